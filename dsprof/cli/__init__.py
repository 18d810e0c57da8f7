"""Command-line interface: thin modules that parse, call one library function and print."""
