import os

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.runners",
    "tests.fixtures.gateway",
    "tests.fixtures.radicale",
]

# The dummy platform's fault verbs (hang, exit1, sigkill) are off by default; tests use them,
# in this process and in every gateway and runner they start (which inherit the environment).
# A test of the default removes the variable itself.
os.environ.setdefault("SOCKETHUB_DUMMY_FAULTS", "true")
