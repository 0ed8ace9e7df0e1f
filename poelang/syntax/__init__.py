"""Front end: source text → AST with spans (`parser`), AST → canonical text (`fmt`)."""
