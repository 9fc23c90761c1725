"""Child process of ``test_sigkill``: open the journal and catch every followed view up.

    python tests/projections/_catch_up_child.py STORE_URL VIEWS_PATH PAGE_SIZE TRANSACTION_EVENTS

Prints ``done <events processed> <max position>`` on success. The parent kills it
with SIGKILL at random moments; nothing here tries to survive that.
"""

from __future__ import annotations

import sys

from runjournal import Journal


def main(url: str, views_path: str, page_size: str, transaction_events: str) -> None:
    journal = Journal.open(url, views_path=views_path)
    try:
        journal.page_size = int(page_size)
        journal.runner.transaction_events = int(transaction_events)
        processed = journal.catch_up()
        print(f"done {processed} {journal.max_position()}", flush=True)
    finally:
        journal.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
