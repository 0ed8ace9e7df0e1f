"""Expert signatures (`spec`), the registry of stdlib and plugin experts (`registry`)."""
from poelang.experts.spec import REQUIRED, Bound, ExpertSpec, FunctionSpec, Param

__all__ = ["REQUIRED", "Bound", "ExpertSpec", "FunctionSpec", "Param"]
