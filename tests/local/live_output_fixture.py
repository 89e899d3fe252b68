"""A handler that blocks until told to return: lets a test hold a function invocation open."""

import threading

started = threading.Event()
release = threading.Event()


def handler(event, context):
    print('{"level": "INFO", "message": "handler log line"}')
    started.set()
    release.wait(10)
    return {"ok": True}
