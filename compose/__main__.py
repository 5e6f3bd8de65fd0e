"""`python -m compose` runs the CLI."""

from compose.cli import main

if __name__ == "__main__":
    main()
