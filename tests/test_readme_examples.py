"""The README's examples do what the README says they do.

The kcat example once sent its JSON over two lines; ``kcat -P`` publishes every line of its
input as a record of its own, so both halves landed in the dead-letter topic. This test reads
the example out of README.md, splits its input as kcat does, and checks that it makes exactly
one record that our envelope and contract accept.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from ledgerlink.shared.business_id import parse_business_id
from ledgerlink.shared.envelope import CloudEvent
from ledgerlink.shared.events import ActivationRequestedV1

ROOT = Path(__file__).resolve().parents[1]


def kcat_example() -> tuple[list[str], list[str]]:
    """The kcat command's arguments and its heredoc input lines, as a shell would see them."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(kcat -P .*?)\n```", readme, re.DOTALL)
    assert block is not None, "README.md has no kcat example"
    command, heredoc = block.group(1).split("<<'JSON'\n")
    body, end = heredoc.rsplit("\n", 1)
    assert end == "JSON"
    arguments = shlex.split(command.replace("\\\n", " ").replace("$(uuidgen)", "uuid"))
    return arguments, body.split("\n")


def test_the_kcat_example_publishes_one_valid_activation() -> None:
    arguments, records = kcat_example()
    assert arguments[:2] == ["kcat", "-P"]
    # kcat's default delimiter is a newline: each input line is one record.
    assert len(records) == 1, f"kcat would publish {len(records)} records"
    data = ActivationRequestedV1.model_validate(json.loads(records[0]))

    options = list(zip(arguments[2::2], arguments[3::2], strict=True))
    headers = [
        (name, value.encode())
        for flag, pair in options
        if flag == "-H"
        for name, value in [pair.split("=", 1)]
    ]
    envelope = CloudEvent.from_headers(headers)
    assert envelope.type == ActivationRequestedV1.EVENT_TYPE
    assert dict(options)["-t"] == ActivationRequestedV1.TOPIC
    # The key is the company's business ID in its normal form (per-company ordering).
    assert dict(options)["-k"] == parse_business_id(data.country, data.business_id).value
