"""Secrets in what the manager shows: env values, URLs, inline assignments in commands."""

from __future__ import annotations

import pytest

from promenade_core.masking import (
    MASK,
    is_secret_key,
    mask_command,
    mask_config,
    mask_env,
    mask_url_credentials,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("postgres://app:s3cret@db:5432/app", "postgres://app:****@db:5432/app"),
    ("redis://:s3cret@localhost:6379/0", "redis://:****@localhost:6379/0"),
    ("amqp://guest:pa@ss@rabbit/", "amqp://guest:****@rabbit/"),
    ("mongodb+srv://u:p%40ss@cluster.example/db", "mongodb+srv://u:****@cluster.example/db"),
    ("use https://user:tok@github.com/x and ftp://a:b@h", "use https://user:****@github.com/x and ftp://a:****@h"),
    ("https://example.com/path?a=b:c@d", "https://example.com/path?a=b:c@d"),
    ("postgres://postgres@localhost/app", "postgres://postgres@localhost/app"),
    ("http://localhost:8000", "http://localhost:8000"),
    ("no url at all: a@b", "no url at all: a@b"),
    ("postgres://app:****@db/app", "postgres://app:****@db/app"),
])
def test_url_credentials_are_masked(text: str, expected: str) -> None:
    """Regression: masking went by env key only, so DATABASE_URL=postgres://u:pw@h (a
    key that looks harmless) showed its password in the dashboard and the API."""
    assert mask_url_credentials(text) == expected


@pytest.mark.parametrize(("command", "expected"), [
    ("STRIPE_SECRET=sk_live_abc python app.py", "STRIPE_SECRET=**** python app.py"),
    ("export API_TOKEN=abc; npm run dev", "export API_TOKEN=****; npm run dev"),
    ("env DB_PASSWORD='with space' X=1 ./run", "env DB_PASSWORD=**** X=1 ./run"),
    ('AUTH_KEY="a \\"q\\" b"&&go', "AUTH_KEY=****&&go"),
    ("app --password=hunter2 --port=80", "app --password=**** --port=80"),
    ("app -api-key=abc", "app -api-key=****"),
    ("cd x && (GH_TOKEN=ghp_1 make)", "cd x && (GH_TOKEN=**** make)"),
    ("TOKEN='unterminated and more", "TOKEN=****"),
    ("PORT=3000 DEBUG=1 npm start", "PORT=3000 DEBUG=1 npm start"),
    ("psql postgres://u:pw@db/app", "psql postgres://u:****@db/app"),
    ("DATABASE_URL=postgres://u:pw@db/app ./run", "DATABASE_URL=postgres://u:****@db/app ./run"),
    ("echo MYTOKEN==x", "echo MYTOKEN=****"),
    ("python -c 'x=TOKEN'", "python -c 'x=TOKEN'"),
    ("TOKEN= python app.py", "TOKEN= python app.py"),
    ("cloudflared tunnel run --token eyJh.x", "cloudflared tunnel run --token ****"),
    ("app --api-key 'a b' --port 80", "app --api-key **** --port 80"),
    ("app --no-auth --port 80", "app --no-auth --port 80"),
    ("app --password=x --token y", "app --password=**** --token ****"),
    ("app --token; next", "app --token; next"),
    ("make -j 4 --debug", "make -j 4 --debug"),
])
def test_inline_secrets_in_commands_are_masked(command: str, expected: str) -> None:
    """Regression: `STRIPE_SECRET=sk_live… python app.py` as a service command was shown
    verbatim by /api/status, /api/config and `promenade status --json`."""
    assert mask_command(command) == expected


def test_mask_env_masks_secret_keys_and_url_passwords_in_any_key() -> None:
    env = {"API_TOKEN": "x", "DATABASE_URL": "postgres://u:pw@db/app", "HOME": "/home/u"}
    assert mask_env(env) == {"API_TOKEN": MASK, "DATABASE_URL": "postgres://u:****@db/app",
                             "HOME": "/home/u"}


def test_mask_config_masks_every_place_a_secret_can_sit() -> None:
    doc = {"config": {"services": {"api": {
        "command": "SECRET=1 run", "env": {"PASSWORD": "p", "URL": "http://a:b@h"},
        "own_env": {"MY_KEY": "k"}, "ready_check": {"http": "http://u:p@localhost/health"},
        "new_field_api_key": "zzz", "port": 1}}}}
    api = mask_config(doc)["config"]["services"]["api"]
    assert api == {"command": "SECRET=**** run", "env": {"PASSWORD": MASK, "URL": "http://a:****@h"},
                   "own_env": {"MY_KEY": MASK}, "ready_check": {"http": "http://u:****@localhost/health"},
                   "new_field_api_key": MASK, "port": 1}
    assert mask_config(mask_config(doc)) == mask_config(doc)  # masking twice changes nothing


def test_secret_key_rule_is_unchanged() -> None:
    assert all(is_secret_key(k) for k in ("api_token", "DB_PASSWD", "AuthHeader", "SSH_KEY"))
    assert not any(is_secret_key(k) for k in ("PORT", "HOME", "DEBUG", "NODE_ENV"))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("hostile", [
    "a" * 300_000,                                   # one long scheme-like word
    "a://" + "b" * 300_000,                          # authority without ':' or '@'
    "a://b:" + "c" * 300_000,                        # password without '@'
    ("x://y:z," * 50_000),                           # many authorities, no '@'
    "T=" + "'" * 300_000,                            # quotes, quotes, quotes
    "TOKEN=\"" + "\\" * 300_000,                     # escapes without end
    "A" * 300_000 + "=",                             # a long name
    "a=b " * 100_000,                                # many harmless assignments
    "--token " * 100_000,                            # options that take options
    "--t" + " " * 300_000 + "x",                     # a long gap before a value
])
def test_masking_is_linear_on_hostile_input(hostile: str) -> None:
    """Commands and env values are user input: a backtracking regex would hang the
    status command on these."""
    mask_command(hostile)
    mask_url_credentials(hostile)
