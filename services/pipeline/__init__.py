"""``portfolio run``: the whole pipeline on one machine, with a live view in the terminal."""
