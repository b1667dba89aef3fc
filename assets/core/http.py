"""Plain HTTP downloads, bounded against hostile servers.

Only http(s) URLs are fetched, and every redirect target is checked too (urllib alone follows
redirects to ftp: and opens file: and data: URLs). A download has a socket timeout and a total
deadline, checked between small reads, so a server that drips bytes cannot hold it forever; an
optional size cap refuses a large Content-Length up front and cuts off a body that grows past it.
The body streams into ``<dest>.part``, renamed to ``dest`` only once all of it has arrived; any
failure removes the partial file.
"""

from __future__ import annotations

import hashlib
import http.client
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlparse

CHUNK = 64 * 1024
MB = 1_000_000


class DownloadError(OSError):
    """A URL could not be fetched; its message is one line, ``<url>: <reason>``."""


class DownloadTimeout(DownloadError):
    """The download's total deadline passed before the whole body arrived."""


class TooLarge(DownloadError):
    """The body, or the Content-Length announcing it, is over the caller's ``max_bytes``."""


class UnsupportedURL(ValueError):
    """A URL other than http(s) with a host: urllib would read local files, inline data or FTP."""


def check_url(url: str | None) -> str:
    """``url`` itself when it is http(s) with a host; UnsupportedURL before any request otherwise."""
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UnsupportedURL(f"only http(s) URLs are downloaded, not {url!r}")
    return url


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to an http(s) URL; urllib's own handler also follows ftp:."""

    def http_error_302(self, req, fp, code, msg, headers):
        target = headers.get("Location") or headers.get("URI")
        if target is not None:
            try:
                check_url(urljoin(req.full_url, target))
            except UnsupportedURL:
                fp.close()
                why = f"{req.full_url} redirects to {target!r}: only http(s) URLs are downloaded"
                raise UnsupportedURL(why) from None
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


_OPENER = urllib.request.build_opener(_CheckedRedirects)


def open_url(request: urllib.request.Request, timeout: float) -> http.client.HTTPResponse:
    """``urlopen`` for an http(s) URL whose redirects may lead only to http(s) URLs."""
    check_url(request.full_url)
    return _OPENER.open(request, timeout=timeout)


def download(
    url: str,
    dest: Path,
    *,
    timeout: float = 60.0,
    deadline: float = 600.0,
    max_bytes: int | None = None,
    headers: dict[str, str] | None = None,
    progress: bool = False,
) -> str:
    """Stream url into dest atomically (dest.part then rename); returns the sha256 hex of the bytes.

    ``timeout`` bounds each wait for data, ``deadline`` the whole download (DownloadTimeout);
    a body over ``max_bytes`` raises TooLarge; any other failure is a DownloadError.
    """
    check_url(url)
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    try:
        digest = _fetch(url, part, time.monotonic() + deadline, timeout, max_bytes, headers or {}, progress)
        part.replace(dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return digest


def _fetch(
    url: str, part: Path, end: float, timeout: float, max_bytes: int | None, headers: dict[str, str], progress: bool
) -> str:
    """The body of ``url`` written to ``part``; its sha256. Every failure is a DownloadError."""
    wait = _wait(url, end, timeout)
    try:
        with open_url(urllib.request.Request(url, headers=headers), wait) as response, part.open("wb") as out:
            expected = _content_length(response)
            if max_bytes is not None and expected is not None and expected > max_bytes:
                raise TooLarge(f"{url}: Content-Length {expected:,} bytes is over the limit of {max_bytes:,}")
            digest, done = hashlib.sha256(), 0
            while chunk := _read(response, wait):
                done += len(chunk)
                if max_bytes is not None and done > max_bytes:
                    raise TooLarge(f"{url}: the body grew past the limit of {max_bytes:,} bytes")
                digest.update(chunk)
                out.write(chunk)
                if progress and ((done - len(chunk)) // MB != done // MB or done == expected):
                    _show(url, done, expected)
                wait = _wait(url, end, timeout)
    except DownloadError:
        raise
    except (OSError, http.client.HTTPException) as error:
        raise failure(url, error, deadline_bound=wait < timeout) from error
    if expected is not None and done != expected:
        raise DownloadError(f"{url}: the body ended after {done:,} of its {expected:,} bytes")
    if progress:
        print(file=sys.stderr)
    return digest.hexdigest()


def _wait(url: str, end: float, timeout: float) -> float:
    """How long the next read may wait: the socket timeout, or less when the deadline is nearer."""
    left = end - time.monotonic()
    if left <= 0:
        raise DownloadTimeout(f"{url}: not complete within the download's deadline")
    return min(timeout, left)


def _read(response: http.client.HTTPResponse, wait: float) -> bytes:
    """At most CHUNK bytes from one receive, waiting at most ``wait`` seconds. urllib gives no handle
    on the socket once the response is open, so its timeout is set through the response's reader."""
    if response.fp is not None:
        response.fp.raw._sock.settimeout(wait)
    return response.read1(CHUNK)


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def failure(url: str, error: Exception, deadline_bound: bool = False) -> DownloadError:
    """The one-line DownloadError for a urllib, http.client or socket error of ``url``; a wait
    that timed out because the deadline, not the socket timeout, bounded it is a DownloadTimeout."""
    reason = error if isinstance(error, urllib.error.HTTPError) else getattr(error, "reason", error)
    if isinstance(reason, TimeoutError):
        if deadline_bound:
            return DownloadTimeout(f"{url}: not complete within the download's deadline")
        return DownloadError(f"{url}: no data within the socket timeout")
    return DownloadError(f"{url}: {reason}")


def _show(url: str, done: int, expected: int | None) -> None:
    name = Path(urlparse(url).path).name or url
    print(f"\r{name}: {done / MB:.1f} / {(expected or 0) / MB:.1f} MB", end="", file=sys.stderr)
