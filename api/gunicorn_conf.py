"""gunicorn settings of the ``web`` process (``gunicorn -c python:api.gunicorn_conf``).

The bind address and the app stay on the command line (see the Procfile).
"""

workers = 2
threads = 4
# gthread, with gunicorn's own error pages (bad request line, header too large) in
# the API's JSON error shape.
worker_class = "api.gunicorn_worker.JsonErrorWorker"
accesslog = "-"
# One default control socket path per user: a second instance on the machine (or a
# test run) would take it over. Older gunicorn versions ignore this setting.
control_socket_disable = True
