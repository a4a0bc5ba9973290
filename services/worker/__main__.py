"""``python -m services.worker``: what ``halsosamtal worker`` runs."""

from services.worker.supervisor import main

main()
