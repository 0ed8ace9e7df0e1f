"""`python -m stdlib_experts.mini.world`: write a dataset of the mini world."""
from stdlib_experts.mini.world.dataset import main

main()
