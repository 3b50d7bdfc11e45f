"""``python -m clinprompt``."""

from clinprompt.cli import main

if __name__ == "__main__":
    main()
