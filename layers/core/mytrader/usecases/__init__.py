"""Use cases: one symbol-cycle (decide), one recorded decision (execute), stops/targets/reconciliation (manage),
export and fine-tuning tasks (learn). They call ports, never an SDK."""
