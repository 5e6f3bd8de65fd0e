"""`python -m compose` runs the CLI."""

from compose.entry import main

if __name__ == "__main__":
    main()
