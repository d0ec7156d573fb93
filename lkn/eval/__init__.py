"""``lkn eval``: the bundled evaluation set, its grader, and the harness that measures care."""
