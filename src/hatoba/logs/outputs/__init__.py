"""Log outputs (forwarders): Fluentd forward, HTTP JSON lines and files, each fed by an
``OutputWorker`` from the tasks' own log files (see README.md in this directory)."""
