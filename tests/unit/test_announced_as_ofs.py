"""Which as_ofs a `training_set` run was triggered for, read from its snapshot events."""

from __future__ import annotations

import logging

import pytest

from streamflow.training import SNAPSHOT_ASSET_URIS, TrainingSetRefused, announced_as_ofs


def events(*per_asset: list[str]) -> dict[str, list[dict]]:
    return {uri: [{"as_of": as_of, "rows": 7043} for as_of in as_ofs] for uri, as_ofs in zip(SNAPSHOT_ASSET_URIS,
                                                                                              per_asset, strict=True)}


def test_five_events_of_one_as_of_announce_it():
    assert len(SNAPSHOT_ASSET_URIS) == 5
    assert announced_as_ofs(events(*[["2024-01-31"]] * 5)) == ["2024-01-31"]


def test_an_as_of_some_assets_announced_is_still_returned_oldest_first_and_named_in_the_log(caplog):
    with caplog.at_level(logging.WARNING, logger="streamflow.training"):
        found = announced_as_ofs(events(["2024-02-29"], ["2024-02-29"], ["2024-02-29", "2024-01-31"],
                                        ["2024-02-29"], ["2024-02-29"]))
    assert found == ["2024-01-31", "2024-02-29"]
    missing = [uri.rsplit("/", 1)[-1] for i, uri in enumerate(SNAPSHOT_ASSET_URIS) if i != 2]
    assert caplog.messages == [f"as_of 2024-01-31 has no event from {', '.join(missing)} in this run: "
                               "built only if its five snapshots are stamped"]


@pytest.mark.parametrize("announced", [{}, {SNAPSHOT_ASSET_URIS[0]: [{"rows": 7043}]}], ids=["no events", "no as_of"])
def test_events_that_name_no_as_of_are_refused(announced):
    with pytest.raises(TrainingSetRefused, match="no as_of in the triggering snapshot events"):
        announced_as_ofs(announced)
