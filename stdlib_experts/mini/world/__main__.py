"""`python -m poelang.stdlib.mini.world`: write a dataset of the mini world."""
from poelang.stdlib.mini.world.dataset import main

main()
