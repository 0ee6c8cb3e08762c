"""wxpay: WeChat Pay V2 and Official Account web APIs, async and sans-I/O at the core."""
from .errors import *  # noqa: F401,F403
from .signing import HMAC_SHA256, MD5, jssdk_signature, make_nonce, sign, verify  # noqa: F401
from .xmlcodec import build_xml, parse_xml  # noqa: F401

__version__ = "0.1.0"
