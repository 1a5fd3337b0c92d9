"""What the SSH user may see on a node, as the tool's own commands will need it — asked, never assumed.

Two reads need privileges a non-root user often lacks: the Glance config (RDO installs
/etc/glance/glance-api.conf 0640 root:glance) and which process holds the API port (``ss -p`` shows
another user's processes to root only). With ``--sudo`` the survey runs every command as the tool
will with ``ssh.sudo = true``: ``sudo -n sh -c …``, which never prompts; a sudo that wants a password
(or refuses the user) is a question naming what it said, never a wrong answer.
"""

from __future__ import annotations

import re

from glance_tui.errors import clipped

# What sudo -n prints when it will not run the command without a password or at all (sudo's own messages).
_SUDO_REFUSED = re.compile(r"^sudo: .*(a password is required|a terminal is required|not allowed to|may not run sudo)"
                           r"|is not in the sudoers file|\bsudo: (command )?not found", re.MULTILINE | re.IGNORECASE)


def sudo_refusal(stderr: str) -> str:
    """sudo's own line when ``sudo -n`` refused to run the command, else ""."""
    m = _SUDO_REFUSED.search(stderr)
    if m is None:
        return ""
    line_start = stderr.rfind("\n", 0, m.start()) + 1
    return clipped(stderr[line_start:].splitlines()[0], 120)


def sudo_question(user: str, said: str) -> str:
    if "not found" in said:
        return (f"--sudo, but this node has no sudo ({said}): install sudo and allow {user} to run commands without a password "
                "(NOPASSWD in sudoers), or run init without --sudo as an --ssh-user that needs none (root)")
    return (f"sudo -n refused to run the survey as {user} ({said}): glance-tui runs every command with `sudo -n` (ssh.sudo = true) "
            f"and never types a password — allow {user} to run commands with sudo without a password (NOPASSWD in sudoers), "
            "or run init with an --ssh-user that needs no sudo (root)")


def is_root(uid_text: str) -> bool | None:
    """The survey's ``id -u``: True for 0, False for another number, None when it did not answer."""
    text = uid_text.strip()
    return (text == "0") if text.isdigit() else None


def listeners_hidden(ss_output: str) -> bool:
    """``ss -Htlnp`` lists a listener on the API port without its process (``users:(…)``): the user cannot see who holds it."""
    lines = [ln for ln in ss_output.splitlines() if ln.startswith("LISTEN")]  # not "ss: not found" and the like
    return bool(lines) and not any("users:(" in ln for ln in lines)


def unprivileged_questions(user: str, uid_text: str, ss_output: str, port: str, config_denied: str) -> list[str]:
    """Questions for a non-root user without --sudo: what the tool would not be able to read as that user."""
    if is_root(uid_text) is not False:
        return []
    fix = "run init again with --sudo (ssh.sudo = true: every command through `sudo -n`), or with an --ssh-user that may read it"
    found = []
    if config_denied:
        found.append(f"{user} may not read Glance's config on this node ({config_denied}): the database is not read from it; {fix}")
    if listeners_hidden(ss_output):
        found.append(f"`ss -Htlnp` shows {user} the listener on port {port} but not the process holding it (ss shows other users' "
                     f"processes to root only), so the tool cannot tell which processes serve Glance; {fix}")
    return found
