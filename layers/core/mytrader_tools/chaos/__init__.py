"""`make chaos`: a user-runnable acceptance suite of hostile messages, races and parameter faults against the
embedded AWS. Each case runs on a fresh stack and is judged by an audit of what the stack holds afterwards
(audit.py): breaches of a hard limit or unauthorised broker orders, decisions or fills lost, duplicate orders."""
