// The checkout page. The server builds the payload, WeChat (its in-app bridge,
// the JS-SDK, a QR code or the H5 cashier) takes the payment, and only the
// server's status ever says "paid": a front-end "ok" just starts the polling.
// No build step, no framework; every text comes from web/strings.json.
(function () {
  "use strict";

  var root = document.documentElement;
  var cfg;
  try {
    cfg = JSON.parse(document.getElementById("page-config").textContent);
  } catch (e) {
    return; // the "did not load" notice stays and offers a reload
  }
  var T = cfg.strings || {};
  // Timings in ms; a test may shorten them (window.WXPAY_TIMING).
  var TIMING = Object.assign(
    { poll: 1500, slowPoll: 5000, slowAfter: 300000, confirm: 60000, recheck: 20000, result: 20000, bridgeWait: 10000, sdkLoad: 10000 },
    window.WXPAY_TIMING || {}
  );
  var JWEIXIN = "https://res.wx.qq.com/open/js/jweixin-1.6.0.js";
  var FINAL = { paid: 1, refunded: 1, partially_refunded: 1, expired: 1, closed: 1 };
  var AFTER = { paid: 1, refunded: 1, partially_refunded: 1, cancelled: 1, failed: 1, expired: 1, closed: 1,
    unconfirmed: 1, error: 1 };
  var base = "/pay/" + encodeURIComponent(cfg.checkoutId);
  var attempt = 0;   // one per press of "pay"; callbacks of older attempts are ignored
  var pollToken = 0; // one per polling run
  var pollTimer = null;
  var pollNow = null;
  var sdk = null;

  function $(id) { return document.getElementById(id); }
  function each(selector, fn) { Array.prototype.forEach.call(document.querySelectorAll(selector), fn); }

  // -- screens ------------------------------------------------------------------

  function show(name, quiet) {
    each(".screen", function (s) { s.hidden = s.getAttribute("data-for") !== name; });
    document.body.setAttribute("data-screen", name);
    $("after").hidden = !AFTER[name];
    var back = $("back");
    if (back) { back.className = "button " + (name === "paid" ? "primary" : "secondary"); }
    if (!quiet) {
      var heading = document.querySelector("#screen-" + name + " h2");
      if (heading) { heading.focus(); }
    }
  }

  function announce(text) {
    var live = $("live");
    live.textContent = "";
    setTimeout(function () { live.textContent = text; }, 50);
  }

  function working(text) {
    $("working-title").textContent = text;
    if (document.body.getAttribute("data-screen") === "working") { announce(text); } else { show("working"); }
  }

  function failed(detail) {
    $("failed-detail").textContent = detail ? String(detail) : "";
    show("failed");
  }

  function problem(text, detail, action) {
    $("error-text").textContent = text;
    $("error-detail").textContent = detail || "";
    var retry = $("retry");
    retry.textContent = action === "reload" ? T.reload : T.retry;
    retry.setAttribute("data-action", action || "pay");
    show("error");
  }

  // -- server calls -------------------------------------------------------------

  function xsrf() {
    var m = document.cookie.match(/(?:^|; )_xsrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function call(method, path, body) {
    var init = { method: method, credentials: "same-origin", cache: "no-store", headers: { "Accept": "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-XSRFToken"] = xsrf();
      init.body = JSON.stringify(body);
    }
    return fetch(base + path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) {
          var e = new Error(j.message || "HTTP " + r.status);
          e.code = j.code || "http_" + r.status;
          e.status = r.status;
          throw e;
        }
        return j;
      });
    }, function () {
      var e = new Error("network");
      e.code = "network";
      throw e;
    });
  }

  // -- polling: the only source of "paid" ----------------------------------------

  function stopPolling() {
    pollToken++;
    clearTimeout(pollTimer);
    pollTimer = null;
    pollNow = null;
  }

  function poll(timeoutMs) {
    stopPolling();
    var token = pollToken;
    var started = Date.now();
    var until = started + timeoutMs;
    function next() {
      if (token !== pollToken) { return; }
      if (Date.now() >= until) { stopPolling(); show("unconfirmed"); return; }
      var wait = Date.now() - started > TIMING.slowAfter ? TIMING.slowPoll : TIMING.poll;
      pollTimer = setTimeout(tick, Math.min(wait, Math.max(0, until - Date.now())));
    }
    function tick() {
      if (token !== pollToken) { return; }
      pollTimer = null;
      call("GET", "/status").then(function (s) {
        if (token !== pollToken) { return; }
        if (FINAL[s.status]) { stopPolling(); refunded(s.refunded_fen); show(s.status); return; }
        next();
      }, function () { next(); });
    }
    pollNow = function () { if (pollTimer) { clearTimeout(pollTimer); tick(); } };
    tick();
  }

  function yuan(fen) {
    fen = Math.round(Number(fen) || 0);
    var whole = Math.floor(fen / 100), cents = fen % 100;
    return String(whole).replace(/\B(?=(\d{3})+(?!\d))/g, ",") + "." + (cents < 10 ? "0" : "") + cents;
  }

  function refunded(fen) {
    if (typeof fen === "number") { $("refunded-value").textContent = yuan(fen); }
  }

  function confirmPayment(timeoutMs) {
    show("confirming");
    poll(timeoutMs);
  }

  // -- paying ---------------------------------------------------------------------

  function pay() {
    var mine = ++attempt;
    stopPolling();
    working(T.working_prepay);
    var body = cfg.env === "wechat" ? { page_url: location.href.split("#")[0] } : {};
    call("POST", "/prepay", body).then(function (p) {
      if (mine !== attempt) { return; }
      if (p.bridge) {
        working(T.working_wechat);
        if (cfg.useJssdk && p.wx_config) { viaJssdk(p, mine); } else { viaBridge(p, mine); }
      } else if (p.qr_svg) {
        showQr(p);
      } else if (p.mweb_url) {
        working(T.working_redirect);
        location.assign(p.mweb_url);
      } else {
        problem(T.error_service, "");
      }
    }, function (e) {
      if (mine === attempt) { prepayFailed(e); }
    });
  }

  function prepayFailed(e) {
    switch (e.code) {
      case "checkout_paid": confirmPayment(TIMING.recheck); return;
      case "checkout_closed": show("closed"); return;
      case "checkout_expired": show("expired"); return;
      case "openid_required":
      case "openid_rejected": problem(T.error_signin, "", "reload"); return;
      case "too_many_orders": problem(T.error_too_many_orders, ""); return;
      case "too_many_requests": problem(T.error_busy, ""); return;
      case "network": problem(T.error_network, ""); return;
      default: problem(T.error_service, e.message + (e.code ? " (" + e.code + ")" : ""));
    }
  }

  // The WeChat app answers get_brand_wcpay_request:ok|cancel|fail (JS-SDK: success/cancel/fail).
  function wechatAnswered(message, detail) {
    message = String(message || "");
    if (/:ok$/.test(message)) { confirmPayment(TIMING.confirm); }
    else if (/cancel/i.test(message)) { show("cancelled"); }
    else { failed(detail); }
  }

  function whenBridge(go, missing) {
    var bridge = window.WeixinJSBridge;
    if (bridge && typeof bridge.invoke === "function") { go(); return; }
    var settled = false;
    var timer = setTimeout(function () {
      if (settled) { return; }
      settled = true;
      document.removeEventListener("WeixinJSBridgeReady", ready);
      missing();
    }, TIMING.bridgeWait);
    function ready() {
      if (settled) { return; }
      settled = true;
      clearTimeout(timer);
      go();
    }
    document.addEventListener("WeixinJSBridgeReady", ready, false);
  }

  function viaBridge(p, mine) {
    whenBridge(function () {
      var answered = false;
      window.WeixinJSBridge.invoke("getBrandWCPayRequest", p.bridge, function (res) {
        if (answered || mine !== attempt) { return; }
        answered = true;
        wechatAnswered(res && res.err_msg, res && res.err_desc);
      });
    }, function () {
      if (mine === attempt) { problem(T.error_not_wechat, ""); }
    });
  }

  function loadJssdk() {
    if (window.wx && typeof window.wx.config === "function") { return Promise.resolve(window.wx); }
    if (sdk) { return sdk; }
    sdk = new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      var timer = setTimeout(fail, TIMING.sdkLoad);
      function fail() {
        clearTimeout(timer);
        sdk = null;
        if (script.parentNode) { script.parentNode.removeChild(script); }
        reject(new Error("jssdk"));
      }
      script.onload = function () {
        clearTimeout(timer);
        if (window.wx && typeof window.wx.config === "function") { resolve(window.wx); } else { fail(); }
      };
      script.onerror = fail;
      script.src = JWEIXIN;
      document.head.appendChild(script);
    });
    return sdk;
  }

  function viaJssdk(p, mine) {
    loadJssdk().then(function (wx) {
      if (mine !== attempt) { return; }
      var settled = false;
      function once(fn) {
        return function (res) {
          if (settled || mine !== attempt) { return; }
          settled = true;
          fn(res || {});
        };
      }
      wx.config(p.wx_config);
      wx.ready(function () {
        if (settled || mine !== attempt) { return; }
        wx.chooseWXPay(Object.assign({}, p.choose_wx_pay, {
          success: once(function () { confirmPayment(TIMING.confirm); }),
          cancel: once(function () { show("cancelled"); }),
          fail: once(function (res) { failed(res.errMsg !== "chooseWXPay:fail" ? res.errMsg : ""); })
        }));
      });
      wx.error(once(function (res) { failed(res.errMsg); }));
    }, function () {
      if (mine === attempt) { problem(T.error_jssdk, ""); }
    });
  }

  function timeOf(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return ""; }
    return d.toLocaleTimeString(cfg.lang === "en" ? "en" : "zh-CN", { hour: "2-digit", minute: "2-digit" });
  }

  function showQr(p) {
    $("qr-img").src = p.qr_svg;
    var until = Date.parse(p.expires_at);
    $("qr-valid").textContent = isNaN(until) ? "" : T.qr_valid_until.replace("{time}", timeOf(p.expires_at));
    show("qr");
    poll(isNaN(until) ? 15 * 60000 : Math.max(TIMING.poll, until - Date.now()));
    if (cfg.sandbox && window.WeixinSandbox && p.code_url) {
      window.WeixinSandbox.offerScan(p.code_url, $("screen-qr"));
    }
  }

  // -- wiring -------------------------------------------------------------------

  $("pay-button").addEventListener("click", pay);
  each(".pay-again", function (b) { b.addEventListener("click", pay); });
  each(".check-again", function (b) {
    b.addEventListener("click", function () { announce(T.checking); confirmPayment(TIMING.recheck); });
  });
  $("retry").addEventListener("click", function () {
    if (this.getAttribute("data-action") === "reload") { location.reload(); } else { pay(); }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && pollNow) { pollNow(); }
  });
  window.addEventListener("pageshow", function (e) {
    // Back from the H5 cashier through the browser's cache: ask the server again.
    if (e.persisted && document.body.getAttribute("data-screen") === "working") { confirmPayment(TIMING.result); }
  });
  window.addEventListener("error", function (e) {
    if (document.body.getAttribute("data-screen") === "working") { problem(T.error_script, e.message || "", "reload"); }
  });

  $("pay-button").disabled = false;
  root.classList.remove("js-pending");

  if (FINAL[cfg.status]) { show(cfg.status, true); }
  else if (cfg.resultPage) { show("confirming", true); poll(TIMING.result); }
  else if (cfg.env === "desktop") { pay(); }
  else { show("idle", true); }
})();
