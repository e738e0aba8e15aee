"""A throw-away test PKI made with the `openssl` command: a CA, server certificates (DNS and IP subject
alternative names) and client certificates, as files in a temporary directory. Python 3 standard library and
the openssl binary only."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile


def _run(*args):
    return subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=60)


class Pki:
    def __init__(self, directory: str | None = None, name: str = "Portico Test CA"):
        self.dir = directory or tempfile.mkdtemp(prefix="portico-pki-")
        os.makedirs(self.dir, exist_ok=True)
        self.ca_key, self.ca = self.path("ca.key"), self.path("ca.crt")
        if not os.path.exists(self.ca):
            _run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                 self.ca_key)
            _run("openssl", "req", "-x509", "-new", "-key", self.ca_key, "-out", self.ca, "-days", "2", "-subj",
                 f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.serial = 1

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def issue(self, cn: str, dns=(), ips=(), client: bool = False) -> tuple[str, str]:
        """(certificate file, key file) for `cn`, signed by the CA."""
        key, csr, crt, ext = (self.path(cn + s) for s in (".key", ".csr", ".crt", ".ext"))
        _run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        _run("openssl", "req", "-new", "-key", key, "-out", csr, "-subj", f"/CN={cn}")
        sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
        with open(ext, "w") as f:
            if sans:
                f.write("subjectAltName=" + ",".join(sans) + "\n")
            f.write(f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}\nbasicConstraints=CA:FALSE\n")
        self.serial += 1
        _run("openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key, "-set_serial",
             str(self.serial + os.getpid() * 1000), "-days", "2", "-out", crt, "-extfile", ext)
        return crt, key

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
