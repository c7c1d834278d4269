"""gunicorn settings for the benches (``--config python:bench.gunicorn_conf``).

gunicorn ignores names it does not know, so these work with every version the project allows.
"""

#: gunicorn 25.1 and later open a control socket at one fixed path per user: two servers of one
#: bench run (or a developer's own gunicorn) would fight over it.
control_socket_disable = True
