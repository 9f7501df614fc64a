"""The Chairside WSGI app with the benchmark's counters attached (gunicorn bench.wsgi)."""

from config.wsgi import application as chairside

from . import instrument

instrument.install_query_counter("web")
instrument.install_publish_counter("web")
instrument.install_send_recorder()
application = instrument.WebApp(chairside)
