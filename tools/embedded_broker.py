"""The embedded MQTT broker (amqtt, pure Python) for machines without mosquitto: `python tools/embedded_broker.py PORT`.

It runs in its own process so a test can stop and restart it like a real broker. Anonymous access on 127.0.0.1 only.
"""

import asyncio
import logging
import sys

from amqtt.broker import Broker


async def serve(port):
    config = {
        "listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:%d" % port}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    print("embedded broker listening on 127.0.0.1:%d" % port, flush=True)
    await asyncio.Event().wait()


def main():
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
