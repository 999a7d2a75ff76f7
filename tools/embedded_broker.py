"""The embedded MQTT broker (amqtt, pure Python) for machines without mosquitto: `python tools/embedded_broker.py PORT`.

It runs in its own process so a test can stop and restart it like a real broker. Anonymous access on 127.0.0.1 only.
"""

import asyncio
import logging
import socket
import sys

from amqtt.broker import Broker


class NoDelayBroker(Broker):
    """amqtt with TCP_NODELAY on every accepted socket, said here rather than left to asyncio's default (which sets
    it on TCP transports today): a broker that lets Nagle hold a small reply for the peer's delayed ACK costs every
    command round trip ~44 ms (measured through mosquitto without set_tcp_nodelay). The 44 ms seen through this
    broker came from the clients' side (paho without TCP_NODELAY: tools/opscenario.py nodelay)."""

    async def stream_connected(self, reader, writer, listener_name):
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await Broker.stream_connected(self, reader, writer, listener_name)


async def serve(port):
    config = {
        "listeners": {"default": {"type": "tcp", "bind": "127.0.0.1:%d" % port}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = NoDelayBroker(config)
    await broker.start()
    print("embedded broker listening on 127.0.0.1:%d" % port, flush=True)
    await asyncio.Event().wait()


def main():
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
