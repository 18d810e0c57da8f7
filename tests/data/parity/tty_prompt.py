"""Prints a line without flushing, then waits for a line on stdin: on a terminal python's stdout
is line-buffered, so the line is shown before the script waits.

    python tty_prompt.py
"""

import sys

print("name?")
answer = sys.stdin.readline().strip()
print("hello", answer)
