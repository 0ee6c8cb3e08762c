"""Packaging for wxpay-server: the server entry point, its layers and the bundled page."""
from pathlib import Path

from setuptools import find_packages, setup


def requirements(name: str) -> list[str]:
    lines = Path(__file__).with_name(name).read_text().splitlines()
    return [ln for ln in (l.split("#")[0].strip() for l in lines) if ln and not ln.startswith("-r")]


setup(
    name="wxpay-server",
    version="0.1.0",
    description="Self-hosted WeChat Pay server (Tornado) with an embedded H5 checkout and an offline WeChat simulator",
    python_requires=">=3.11",
    packages=find_packages(include=["wxpay", "wxpay.*", "store", "store.*", "service", "service.*", "handlers", "handlers.*", "config", "config.*", "edge", "edge.*", "wiring", "wiring.*", "web"]),
    py_modules=["server"],
    package_data={"config": ["*.toml"], "web": ["templates/*.html", "static/*", "strings.json", "sandbox/*"], "wxpay.simulator": ["demo_cert/*", "demo_v3/*"]},
    install_requires=requirements("requirements.txt"),
    extras_require={"test": requirements("requirements-test.txt")},
    entry_points={"console_scripts": ["wxpay-server=server:cli"]},
)
