"""URL helpers: absolutise, drop tracking parameters, normalise for dedup. Pure: no I/O."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

# Parameters that only track the reader (Miniflux's and ClearURLs' common lists).
_TRACKING_EXACT = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "mc_cid",
        "mc_eid", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id",
        "vero_conv", "wickedid", "twclid", "ttclid", "srsltid", "__s", "_openstat", "ncid",
        "sr_share", "spm", "rb_clickid",
    }
)  # fmt: skip
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "itm_")
_SAFE_SCHEMES = ("http", "https")
MAX_NORMAL = 500


def is_tracking_param(name: str) -> bool:
    lowered = name.lower()
    return lowered in _TRACKING_EXACT or lowered.startswith(_TRACKING_PREFIXES)


def absolutise(url: str | None, base: str | None) -> str | None:
    """Resolve ``url`` against ``base``; ``None`` for empty input."""
    if url is None:
        return None
    url = url.strip()
    if not url:
        return None
    if url.startswith(("https://", "http://")) and "/." not in url:
        return url  # already absolute, nothing to resolve (the common case: skip urljoin)
    if base:
        try:
            return urljoin(base, url)
        except ValueError:
            return url
    return url


def strip_tracking(url: str) -> str:
    """Drop tracking query parameters (utm_* and friends), keeping everything else as it was."""
    if "?" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.query or parts.scheme not in _SAFE_SCHEMES:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not is_tracking_param(k)]
    if len(kept) == len(pairs):
        return url
    return urlunsplit(parts._replace(query=urlencode(kept, doseq=True)))


_SLASHES = re.compile(r"/{2,}")


def normalise_link(url: str | None) -> str | None:
    """A comparison form of a link: the same story under cosmetic URL variations maps to one value.

    Scheme and ``www.`` are ignored, host lowercased, default ports, fragments, tracking
    parameters and a trailing slash dropped, remaining query parameters sorted.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in _SAFE_SCHEMES or not parts.hostname:
        return None
    host = parts.hostname.lower().removeprefix("www.")
    if port and port not in (80, 443):
        host = f"{host}:{port}"
    path = _SLASHES.sub("/", parts.path or "/").rstrip("/") or "/"
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not is_tracking_param(k)
    )
    normal = f"//{host}{path}"
    if query:
        normal += "?" + urlencode(query)
    if len(normal) > MAX_NORMAL:  # indexed column: keep it bounded, still distinct
        normal = normal[:200] + "#sha256:" + hashlib.sha256(normal.encode("utf-8")).hexdigest()
    return normal
