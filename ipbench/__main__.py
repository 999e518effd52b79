"""`python -m ipbench ...` is `bench ...` (for launchers that start modules: torchrun -m ipbench run ...)."""
from ipbench.cli import main

if __name__ == "__main__":
    main()
