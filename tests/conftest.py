"""Shared fixtures: real services from Debian's packages, started on loopback in temp dirs."""

pytest_plugins = [
    "tests.fixtures.mariadb",
    "tests.fixtures.haproxy",
    "tests.fixtures.sshd",
    "tests.fixtures.cluster",
]
