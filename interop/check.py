"""graph-sim against Microsoft's own Python clients (`make interop`).

Starts graph-sim (with --tls, or plain loopback), then signs in and calls Graph through MSAL,
azure-identity and the Graph beta SDK as an admin's script would. Each check prints PASS or FAIL
with what it saw; the exit status is non-zero if any failed. Every wait is bounded.
"""

import argparse
import asyncio
import csv
import datetime
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

import requests

TENANT = "5e1f0c2a-7d3b-4c8e-9a61-0b2d4f6e8a10"
CLIENT = "sim-client"
SECRET = "sim-secret"
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
DEVICES = 250
TIMEOUT = 30


class Sim:
    """A graph-sim process and what it printed: its URL, and with --tls the CA file."""

    def __init__(self, binary, tls, certificate, workdir):
        args = [
            binary,
            "--devices", str(DEVICES),
            "--mac-share", "0.6",
            "--certificate", certificate,
            "--device-code-approve-after", "1",
        ]
        if tls:
            args += ["--tls", "--ca-out", os.path.join(workdir, "ca.pem")]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        first = self.proc.stdout.readline().strip()
        if not first.startswith("listening on "):
            raise RuntimeError(f"graph-sim did not start: {first!r}")
        self.base = first.removeprefix("listening on ")
        self.ca = None
        if tls:
            second = self.proc.stdout.readline().strip()
            if not second.startswith("ca certificate at "):
                raise RuntimeError(f"no CA line: {second!r}")
            self.ca = second.removeprefix("ca certificate at ")
        self.host = urllib.parse.urlparse(self.base).netloc
        self.http = requests.Session()
        self.http.verify = self.ca or True

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def stats(self):
        return self.http.get(f"{self.base}/_sim/stats", timeout=TIMEOUT).json()

    def devices(self):
        """Rows of the simulator's device export (id, operating system)."""
        text = self.http.get(f"{self.base}/_sim/devices.csv", timeout=TIMEOUT).text
        return list(csv.DictReader(io.StringIO(text)))

    def token(self):
        """A token by a plain form post, for the plain-http run where MSAL cannot be used."""
        r = self.http.post(
            f"{self.base}/{TENANT}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "client_id": CLIENT,
                  "client_secret": SECRET, "scope": GRAPH_DEFAULT},
            timeout=TIMEOUT,
        )
        r.raise_for_status()
        return r.json()["access_token"]

    def reads_devices(self, token):
        r = self.http.get(
            f"{self.base}/beta/deviceManagement/managedDevices?$top=1&$select=id",
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )
        return r.status_code == 200


def make_certificate(path):
    """A self-signed RSA certificate and its key in one PEM, with its SHA-1 thumbprint."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "interop-check")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    der = cert.public_bytes(serialization.Encoding.DER)
    with open(path, "w") as f:
        f.write(key_pem + cert_pem)
    return key_pem, cert_pem, hashlib.sha1(der).hexdigest()


class Checks:
    def __init__(self):
        self.results = []

    def run(self, name, fn):
        started = time.monotonic()
        try:
            note = fn()
            self.results.append((name, True, note or ""))
        except Exception as e:  # a check's failure is reported, never fatal to the others
            self.results.append((name, False, f"{type(e).__name__}: {e}"))
        took = time.monotonic() - started
        ok, note = self.results[-1][1], self.results[-1][2]
        print(f"{'PASS' if ok else 'FAIL'}  {name} ({took:.1f} s){': ' + note if note else ''}", flush=True)

    def failed(self):
        return [r for r in self.results if not r[1]]


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


# --- MSAL ---------------------------------------------------------------------------------------

def msal_confidential(sim, credential):
    import msal
    app = msal.ConfidentialClientApplication(
        CLIENT, client_credential=credential, authority=f"{sim.base}/{TENANT}",
        instance_discovery=False, verify=sim.ca or True, timeout=TIMEOUT,
    )
    result = app.acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    expect("access_token" in result, f"no token: {result.get('error')} {result.get('error_description')}")
    expect(sim.reads_devices(result["access_token"]), "Graph refused MSAL's token")
    return "token works against Graph"


def msal_device_code(sim):
    import msal
    app = msal.PublicClientApplication(
        CLIENT, authority=f"{sim.base}/{TENANT}", instance_discovery=False,
        verify=sim.ca or True, timeout=TIMEOUT,
    )
    flow = app.initiate_device_flow(scopes=["https://graph.microsoft.com/DeviceManagementManagedDevices.Read.All"])
    expect("user_code" in flow, f"no device code: {flow}")
    flow["expires_at"] = time.time() + 30  # bounded: the simulated admin approves within a second
    result = app.acquire_token_by_device_flow(flow)
    expect("access_token" in result, f"no token: {result.get('error')} {result.get('error_description')}")
    claims = result.get("id_token_claims") or {}
    expect(claims.get("preferred_username"), f"no id token claims: {claims}")
    accounts = app.get_accounts()
    expect(len(accounts) == 1, f"MSAL built no account from client_info: {accounts}")
    expect(sim.reads_devices(result["access_token"]), "Graph refused the delegated token")
    return f"signed in as {claims['preferred_username']}, account cached"


def msal_refuses_plain_http(sim):
    import msal
    try:
        msal.ConfidentialClientApplication(
            CLIENT, client_credential=SECRET, authority=f"{sim.base}/{TENANT}", instance_discovery=False,
        ).acquire_token_for_client(scopes=[GRAPH_DEFAULT])
    except ValueError as e:
        return f"refused as documented: {e}"
    raise AssertionError("MSAL accepted a plain-http authority")


# --- azure-identity -----------------------------------------------------------------------------

def identity_token(sim, credential):
    token = credential.get_token(GRAPH_DEFAULT)
    expect(token.token, "no token")
    expect(sim.reads_devices(token.token), "Graph refused the token")
    return "token works against Graph"


def identity_secret(sim):
    from azure.identity import ClientSecretCredential
    return identity_token(sim, ClientSecretCredential(
        TENANT, CLIENT, SECRET, authority=sim.host, disable_instance_discovery=True))


def identity_certificate(sim, pem_path):
    from azure.identity import CertificateCredential
    return identity_token(sim, CertificateCredential(
        TENANT, CLIENT, certificate_path=pem_path, authority=sim.host, disable_instance_discovery=True))


def identity_device_code(sim):
    from azure.identity import DeviceCodeCredential
    seen = []
    credential = DeviceCodeCredential(
        client_id=CLIENT, tenant_id=TENANT, authority=sim.host, disable_instance_discovery=True,
        prompt_callback=lambda uri, code, expires: seen.append(code), timeout=30,
    )
    note = identity_token(sim, credential)  # asks for `.default`, as azure-identity always does
    expect(seen, "no device code was shown")
    return note


# --- the Graph beta SDK -------------------------------------------------------------------------

class PlainCredential:
    """A token credential over the simulator's token endpoint, for plain http (no MSAL)."""

    def __init__(self, sim):
        self.sim = sim

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken
        return AccessToken(self.sim.token(), int(time.time()) + 3000)


def sdk_client(sim, credential):
    import httpx
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph_beta import GraphServiceClient
    from msgraph_beta.graph_request_adapter import GraphRequestAdapter
    from msgraph_core import APIVersion, GraphClientFactory

    http = httpx.AsyncClient(verify=sim.ca or True, timeout=TIMEOUT)
    http = GraphClientFactory.create_with_default_middleware(api_version=APIVersion.beta, client=http)
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=[GRAPH_DEFAULT], allowed_hosts=[urllib.parse.urlparse(sim.base).hostname])
    adapter = GraphRequestAdapter(auth, http)
    adapter.base_url = f"{sim.base}/beta"
    return GraphServiceClient(request_adapter=adapter), adapter


async def sdk_pages_every_device(sim, credential):
    from msgraph_beta.generated.device_management.managed_devices.managed_devices_request_builder import (
        ManagedDevicesRequestBuilder,
    )
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph_core.tasks.page_iterator import PageIterator

    client, adapter = sdk_client(sim, credential)
    query = ManagedDevicesRequestBuilder.ManagedDevicesRequestBuilderGetQueryParameters(top=40, select=["id", "deviceName"])
    first = await client.device_management.managed_devices.get(RequestConfiguration(query_parameters=query))
    seen = []
    pages = PageIterator(first, adapter)
    await asyncio.wait_for(pages.iterate(lambda d: seen.append(d.id) or True), timeout=120)
    expect(len(seen) == DEVICES and len(set(seen)) == DEVICES, f"{len(seen)} listed, {len(set(seen))} distinct")
    return f"{len(seen)} devices over {DEVICES // 40 + 1} pages"


async def sdk_direct_action(sim, credential, mac):
    client, _ = sdk_client(sim, credential)
    await client.device_management.managed_devices.by_managed_device_id(mac).rotate_file_vault_key.post()
    accepted = sim.stats()["actions"].get("rotateFileVaultKey", {}).get(mac)
    expect(accepted == 1, f"the simulator accepted it {accepted} times")
    return "rotateFileVaultKey accepted once"


async def sdk_batch(sim, credential, macs):
    from kiota_abstractions.api_error import APIError
    from msgraph_core.requests.batch_request_builder import BatchRequestBuilder
    from msgraph_core.requests.batch_request_content import BatchRequestContent
    from msgraph_core.requests.batch_request_item import BatchRequestItem

    client, adapter = sdk_client(sim, credential)
    batch = BatchRequestBuilder(adapter)

    def items(group):
        out = []
        for mac in group:
            info = client.device_management.managed_devices.by_managed_device_id(mac).rotate_file_vault_key.to_post_request_information()
            out.append(BatchRequestItem(request_information=info))
        return out

    def rotations():
        return sim.stats()["actions"].get("rotateFileVaultKey", {})

    async def post(group):
        """Item statuses, or the status of the whole batch where Graph refused it."""
        try:
            answer = await batch.post(BatchRequestContent({i.id: i for i in group}))
            return sorted(r.status for r in answer.responses.values())
        except APIError as e:
            return e.response_status_code

    # Absolute item URLs, as msgraph-sdk-python issue 1015 shows the SDK sending them: refused
    # whole, nothing run.
    before = rotations()
    absolute = items(macs[:2])
    for i in absolute:
        i.url = f"{sim.base}/beta{i.url}" if i.url.startswith("/") else i.url
    expect(await post(absolute) == 400, "a batch of absolute URLs was not refused with 400")
    expect(rotations() == before, "an item of a refused batch ran")
    # The items as this SDK version builds them, then made relative as users work around it.
    built = items(macs[2:4])
    shape = "absolute" if built[0].url.startswith("http") else "relative"
    for i in built:
        i.set_url(i.url)
    expect(all(i.url.startswith("/deviceManagement/") for i in built), [i.url for i in built])
    statuses = await post(built)
    expect(statuses == [204, 204], f"item statuses {statuses}")
    after = rotations()
    expect(all(after.get(m, 0) == before.get(m, 0) + 1 for m in macs[2:4]), "each device rotated once")
    return f"absolute URLs refused (400); this SDK builds {shape} item URLs; relative items answered 204"


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--graph-sim", required=True, help="the graph-sim binary")
    p.add_argument("--mode", choices=["tls", "plain"], required=True)
    a = p.parse_args()
    tls = a.mode == "tls"
    checks = Checks()
    with tempfile.TemporaryDirectory() as work:
        pem_path = os.path.join(work, "client.pem")
        key_pem, cert_pem, sha1 = make_certificate(pem_path)
        sim = Sim(a.graph_sim, tls, pem_path, work)
        if tls:
            # azure-identity and MSAL use requests, which trusts this bundle.
            os.environ["REQUESTS_CA_BUNDLE"] = sim.ca
        print(f"== graph-sim at {sim.base}", flush=True)
        try:
            macs = [d["Device ID"] for d in sim.devices() if d.get("OS") == "macOS"]
            if tls:
                checks.run("MSAL: client secret", lambda: msal_confidential(sim, SECRET))
                checks.run("MSAL: certificate, SHA-1 thumbprint (x5t, padded)",
                           lambda: msal_confidential(sim, {"private_key": key_pem, "thumbprint": sha1}))
                checks.run("MSAL: certificate with its public part (PS256, x5t#S256 padded, x5c)",
                           lambda: msal_confidential(sim, {"private_key": key_pem, "public_certificate": cert_pem}))
                checks.run("MSAL: device code, account from id_token and client_info", lambda: msal_device_code(sim))
                checks.run("azure-identity: client secret", lambda: identity_secret(sim))
                checks.run("azure-identity: certificate", lambda: identity_certificate(sim, pem_path))
                checks.run("azure-identity: device code (.default)", lambda: identity_device_code(sim))
                from azure.identity import ClientSecretCredential
                credential = ClientSecretCredential(
                    TENANT, CLIENT, SECRET, authority=sim.host, disable_instance_discovery=True)
            else:
                checks.run("MSAL refuses a plain-http authority", lambda: msal_refuses_plain_http(sim))
                credential = PlainCredential(sim)
            checks.run("Graph beta SDK: pages every device",
                       lambda: asyncio.run(sdk_pages_every_device(sim, credential)))
            checks.run("Graph beta SDK: one direct action",
                       lambda: asyncio.run(sdk_direct_action(sim, credential, macs[0])))
            checks.run("Graph beta SDK: $batch, absolute URLs refused and relative ones run",
                       lambda: asyncio.run(sdk_batch(sim, credential, macs[1:5])))
        finally:
            sim.stop()
    failed = checks.failed()
    print(f"== {a.mode}: {len(checks.results) - len(failed)} passed, {len(failed)} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
