"""The compose stack's preflight: no public dev secret outside dev mode, and the logins' passwords.

Run by the one-shot `preflight` service before every other service, the databases included: the
postgres image takes POSTGRES_PASSWORD only when it initialises an empty volume, so one start with
the public password would keep it there after the variable is changed.

* STREAMFLOW_DEV_MODE=1: the public dev defaults are accepted and logins are off (the auth manager's
  all-admins mode): the loopback-only stack of a developer's machine. Nothing else is checked.
* otherwise every secret must be set to a value of its own (not the public default in
  docker-compose.yml or .env), and every user of STREAMFLOW_AIRFLOW_USERS needs a password in the
  passwords file (STREAMFLOW_PASSWORDS_FILE, mounted as a Docker secret). The file is then copied,
  owned by AIRFLOW_UID and readable by it alone, to where the API server's simple auth manager reads
  it: the auth manager opens its passwords file read-write (and writes a generated password for a
  user missing from it), which a read-only secret mount does not allow, and a secret file keeps the
  host's owner and mode, which the API server's uid usually cannot read.

Exits 1 naming every variable to set. Standard library only: it runs in the Airflow image before
anything is installed or connected, and on the host in tests/dags/test_compose_preflight.py.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import sys
import tempfile
from pathlib import Path

#: The public values the repository ships (docker-compose.yml's defaults, .env's warehouse password):
#: anyone can read them, so they protect nothing. tests/dags/test_compose_preflight.py keeps this in
#: step with the files.
PUBLIC_DEV_VALUES = {
    "AIRFLOW_JWT_SECRET": "streamflow-dev-only-jwt-secret-not-for-production-0123456789abcdef",
    "AIRFLOW_API_SECRET_KEY": "streamflow-dev-only-api-secret-key-not-for-production",
    "AIRFLOW_METADATA_PASSWORD": "airflow",
    "POSTGRES_PASSWORD": "streamflow-dev",
}
#: The secrets every service shares; each must be set outside dev mode.
SECRETS = ("AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_FERNET_KEY", "AIRFLOW_METADATA_PASSWORD",
           "POSTGRES_PASSWORD")
#: HS512 signs the API's tokens: a shorter key is weaker than the hash (PyJWT warns below 64 bytes).
MIN_JWT_SECRET_LENGTH = 64
#: Compose puts these two into connection URIs as they are (it cannot percent-escape).
URL_SAFE_PASSWORDS = ("AIRFLOW_METADATA_PASSWORD", "POSTGRES_PASSWORD")
URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")
#: The simple auth manager's roles (SimpleAuthManagerRole), lowest first.
ROLES = ("viewer", "user", "op", "admin")
DEV_MODE_VALUES = {"1": True, "true": True, "0": False, "false": False, "": False}
#: What a user runs to get every value, outside the repository (docs/logins.md).
HOW_TO_GENERATE = "make compose-secrets (docs/logins.md)"


def dev_mode(env: dict[str, str]) -> bool | None:
    """STREAMFLOW_DEV_MODE as Airflow's simple_auth_manager_all_admins will read it; None: neither."""
    return DEV_MODE_VALUES.get(env.get("STREAMFLOW_DEV_MODE", "").strip().lower())


def parse_users(value: str) -> tuple[list[tuple[str, str]], list[str]]:
    """STREAMFLOW_AIRFLOW_USERS (`name:role,...`, the auth manager's format) -> (users, problems)."""
    users, problems = [], []
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, _, role = entry.partition(":")
        if not name or role.lower() not in ROLES:
            problems.append(f"STREAMFLOW_AIRFLOW_USERS: {entry!r} is not name:role with a role of {', '.join(ROLES)}")
        else:
            users.append((name, role.lower()))
    if not users and not problems:
        problems.append("STREAMFLOW_AIRFLOW_USERS is empty: name at least one user (name:role,...)")
    return users, problems


def secret_problems(env: dict[str, str]) -> list[str]:
    problems = []
    for name in SECRETS:
        value = env.get(name, "")
        if not value:
            problems.append(f"{name} is not set")
        elif value == PUBLIC_DEV_VALUES.get(name):
            problems.append(f"{name} is the public dev default")
    jwt_secret = env.get("AIRFLOW_JWT_SECRET", "")
    if jwt_secret and len(jwt_secret) < MIN_JWT_SECRET_LENGTH:
        problems.append(f"AIRFLOW_JWT_SECRET has {len(jwt_secret)} characters: HS512 wants {MIN_JWT_SECRET_LENGTH} or more")
    fernet_key = env.get("AIRFLOW_FERNET_KEY", "")
    if fernet_key and not _is_fernet_key(fernet_key):
        problems.append("AIRFLOW_FERNET_KEY is not a Fernet key (32 bytes, URL-safe base64: 44 characters)")
    for name in URL_SAFE_PASSWORDS:
        value = env.get(name, "")
        if value and not URL_SAFE.fullmatch(value):
            problems.append(f"{name} holds characters a connection URI would misread: use A-Z a-z 0-9 . _ ~ -")
    return problems


def _is_fernet_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode("ascii"))) == 32 and len(value) == 44
    except (binascii.Error, UnicodeEncodeError):
        return False


def password_problems(users: list[tuple[str, str]], passwords_text: str, passwords_file: str) -> list[str]:
    """Every user has a non-empty password in the passwords file (the auth manager's JSON object)."""
    where = f"STREAMFLOW_PASSWORDS_FILE ({passwords_file})" if passwords_file else "STREAMFLOW_PASSWORDS_FILE (not set)"
    try:
        passwords = json.loads(passwords_text.strip() or "{}")
    except json.JSONDecodeError as error:
        return [f"{where} is not JSON: {error}"]
    if not isinstance(passwords, dict):
        return [f"{where} must be a JSON object of user name to password"]
    missing = [name for name, _role in users if not isinstance(passwords.get(name), str) or not passwords[name]]
    if missing:
        return [f"{where} has no password for {', '.join(missing)}"]
    return []


def install_passwords(passwords_text: str, target: Path, uid: int | None) -> None:
    """Write the file where the API server reads it: owner `uid`, mode 0600, replaced in one rename
    (a login reading it meanwhile sees the old file or the new one)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(dir=target.parent, prefix=".passwords-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(passwords_text)
        os.chmod(scratch, 0o600)
        if uid is not None and os.geteuid() == 0:
            os.chown(scratch, uid, 0)
        os.replace(scratch, target)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


def preflight(env: dict[str, str]) -> tuple[int, list[str]]:
    """(exit status, lines to print) for this environment; installs the passwords when it passes."""
    mode = dev_mode(env)
    if mode is None:
        return 1, [f"preflight: STREAMFLOW_DEV_MODE={env['STREAMFLOW_DEV_MODE']!r}: use 1 (dev mode) or 0"]
    if mode:
        return 0, ["preflight: STREAMFLOW_DEV_MODE=1: public dev secrets accepted, logins off (everyone is admin)."
                   " For a developer's machine only: the UI is published on loopback."]

    users, problems = parse_users(env.get("STREAMFLOW_AIRFLOW_USERS", ""))
    problems = secret_problems(env) + problems
    secret_path = Path(env.get("STREAMFLOW_PASSWORDS_SECRET", "/run/secrets/airflow_passwords"))
    try:
        passwords_text = secret_path.read_text(encoding="utf-8")
    except OSError as error:
        problems.append(f"the passwords secret {secret_path} cannot be read: {error.strerror}")
    else:
        if users:
            problems += password_problems(users, passwords_text, env.get("STREAMFLOW_PASSWORDS_FILE", ""))
    if problems:
        return 1, [*(f"preflight: {problem}" for problem in problems),
                   f"preflight: refusing to start. Generate every value with {HOW_TO_GENERATE}, or set "
                   "STREAMFLOW_DEV_MODE=1 for a local dev stack with the public defaults and no logins."]

    target = Path(env.get("STREAMFLOW_PASSWORDS_INSTALLED", "/opt/airflow/auth/simple_auth_manager_passwords.json"))
    uid = int(env["AIRFLOW_UID"]) if env.get("AIRFLOW_UID", "").isdigit() else None
    install_passwords(passwords_text, target, uid)
    roles = ", ".join(f"{name} ({role})" for name, role in users)
    return 0, [f"preflight: secrets set; logins on for {roles}"]


def main() -> int:
    status, lines = preflight(dict(os.environ))
    for line in lines:
        print(line, file=sys.stderr if status else sys.stdout, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
