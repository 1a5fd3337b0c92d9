"""The staging lab: real MariaDB, HAProxy, sshd and glance-api on loopback (also used by the tests)."""
