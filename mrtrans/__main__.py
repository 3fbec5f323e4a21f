"""`python -m mrtrans ...`, also what `torchrun -m mrtrans train ...` runs."""

from mrtrans.cli import app

if __name__ == "__main__":
    app()
