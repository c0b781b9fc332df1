# gunicorn configuration for placement-server (passed with -c; the options
# themselves are on the command line the harness builds).
#
# The gunicorn master imports Placement's modules once, before it forks the
# workers: they then share those pages (copy-on-write) and each worker only
# builds its own application and database engine (placement.wsgi.api), so
# all workers are up about as fast as one. Nothing here opens a database
# connection or starts a thread; that would not survive the fork.
import placement.deploy  # noqa: F401
import placement.wsgi  # noqa: F401
import psycopg2  # noqa: F401
