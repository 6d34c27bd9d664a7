"""`python -m bot.cli`, as the tests and `make` run it."""

from bot.cli import main

main()
