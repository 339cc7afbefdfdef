pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.runners",
    "tests.fixtures.gateway",
]
