"""The simulator's APIv3 side (WeChat's half of the wire; the merchant's half is ``wxpay.v3``).

- ``wire``: the error shape and what a request body may hold;
- ``keyring``: one merchant's keys and key mode (which of WeChat's keys signs what);
- ``auth``: checking a request's ``Authorization``;
- ``rules``: the business APIs on the one order book shared with V2;
- ``bills``: the two-step bills;
- ``side``: signing replies and notifies, with the V3 faults;
- ``handlers``: the endpoints at WeChat's paths;
- ``credentials``: what ``python -m wxpay.simulator credentials`` prints.

It imports ``wxpay.v3`` absolutely (keys, signing, AES-GCM), never the
merchant's verification or notify reading.
"""
