"""Which senders are people of another network bridged into a Matrix room (mautrix-whatsapp's puppets).

A bridge marks its rooms with a state event ``m.bridge`` (or the older ``uk.half-shot.bridge``)
whose ``protocol.id`` names the network, and speaks for each remote person as a puppet whose
user id is in its namespace (mautrix-whatsapp: ``@whatsapp_<phone number>:server``). A sender is
taken as bridged when its id is a puppet of a network the room is bridged to. The bridges of each
room are read from the sync (the first sync of a run brings the whole state).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BRIDGE_TYPES = ("m.bridge", "uk.half-shot.bridge")
# the default puppet user-id prefixes of the bridges Vigil knows
PUPPET_PREFIXES: Mapping[str, str] = {"whatsapp": "@whatsapp_"}
NETWORKS = ("", *PUPPET_PREFIXES)  # "" = not bridged


class BridgeBook:
    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, str]] = {}  # room id -> {state key: network}

    def note(self, room_id: str, source: Mapping[str, Any]) -> None:
        """A state event from the sync; bridge events set (or, emptied, clear) the room's network."""
        if source.get("type") not in BRIDGE_TYPES or not isinstance(source.get("state_key"), str):
            return
        content = source.get("content")
        protocol = content.get("protocol") if isinstance(content, dict) else None
        network = protocol.get("id") if isinstance(protocol, dict) else None
        bridges = self._rooms.setdefault(room_id, {})
        if isinstance(network, str) and network.lower() in PUPPET_PREFIXES:
            bridges[source["state_key"][:255]] = network.lower()
        else:
            bridges.pop(source["state_key"], None)

    def network(self, room_id: str, user_id: str) -> str:
        """The network (e.g. "whatsapp") of a bridged sender in this room; "" if not one."""
        for network in set(self._rooms.get(room_id, {}).values()):
            if user_id.startswith(PUPPET_PREFIXES[network]):
                return network
        return ""
