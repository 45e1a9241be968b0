"""Keeps instances off the host: a space's bridge may reach the host only for DNS.

netavark's isolate option already stops traffic between spaces (FORWARD); this adds
the INPUT side, so an instance cannot reach services that listen on the host's
addresses (its gateway IP included). Replies to connections the host opened (the
router's, the health checks') still pass.
"""

from __future__ import annotations

import shutil
import subprocess
import threading

from cove.domain.errors import DeployFailed


class HostFirewall:
    def __init__(self, install: str, binary: str = "iptables") -> None:
        self.chain = f"COVE-{install}-HOST"
        self.binary = shutil.which(binary) or binary
        self._lock = threading.Lock()  # one chain, made once, whatever starts at once

    def _ipt(self, *args: str, check: bool = False) -> bool:
        """Run iptables; a failed check is an answer, a failed change is an error (an
        unguarded bridge would leave the host open, so nothing may start on it)."""
        proc = subprocess.run([self.binary, "-w", *args], capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise DeployFailed(f"could not guard the host with {self.binary} "
                               f"{' '.join(args[:2])}: {proc.stderr.strip() or 'failed'}; "
                               "`cove-server doctor` checks the firewall")
        return proc.returncode == 0

    def _ensure_chain(self) -> None:
        if self._ipt("-S", self.chain):
            return
        self._ipt("-N", self.chain, check=True)
        for rule in (["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
                     ["-p", "udp", "--dport", "53", "-j", "ACCEPT"],
                     ["-p", "tcp", "--dport", "53", "-j", "ACCEPT"],
                     ["-j", "DROP"]):
            self._ipt("-A", self.chain, *rule, check=True)

    def guard(self, interface: str) -> None:
        with self._lock:
            self._ensure_chain()
            jump = ["INPUT", "-i", interface, "-j", self.chain]
            if not self._ipt("-C", *jump):
                self._ipt("-I", *jump, check=True)

    def allow(self, interface: str, address: str, port: int) -> None:
        """Let the bridge reach one TCP port at one address of the host (first in the
        guard's chain, and for this bridge only)."""
        with self._lock:
            self._ensure_chain()
            rule = [self.chain, "-i", interface, "-d", address, "-p", "tcp",
                    "--dport", str(port), "-j", "ACCEPT"]
            if not self._ipt("-C", *rule):
                self._ipt("-I", rule[0], "1", *rule[1:], check=True)

    def guards(self, interface: str) -> bool:
        """Whether the bridge's traffic to the host goes through the guard."""
        return bool(interface) and self._ipt("-C", "INPUT", "-i", interface, "-j", self.chain)

    def release(self, interface: str) -> None:
        while self._ipt("-D", "INPUT", "-i", interface, "-j", self.chain):
            pass

    def remove(self) -> None:
        """Drop the chain once no bridge jumps to it any more."""
        self._ipt("-F", self.chain)
        self._ipt("-X", self.chain)


class HostFirewalls:
    """The guard for IPv4 and for IPv6: a space's bridge also has an IPv6 link-local
    address, and the host's services listening there must be as far out of reach."""

    def __init__(self, install: str) -> None:
        self.each = (HostFirewall(install, "iptables"), HostFirewall(install, "ip6tables"))

    def guard(self, interface: str) -> None:
        for firewall in self.each:
            firewall.guard(interface)

    def guards(self, interface: str) -> bool:
        return all(firewall.guards(interface) for firewall in self.each)

    def release(self, interface: str) -> None:
        for firewall in self.each:
            firewall.release(interface)

    def remove(self) -> None:
        for firewall in self.each:
            firewall.remove()
