"""`python -m mytrader_tools.cli` runs the command line."""
from mytrader_tools.cli import app

if __name__ == "__main__":  # pragma: no cover
    app()
