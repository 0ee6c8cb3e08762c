// The checkout page: ask the server to pay, hand the payload to WeChat, and
// believe only the server's confirmation (never the front-end "ok").
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("page-config").textContent);
  var base = "/pay/" + encodeURIComponent(cfg.checkoutId);
  var $ = function (id) { return document.getElementById(id); };
  var polling = null;

  function xsrf() {
    var m = document.cookie.match(/(?:^|; )_xsrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function say(text) { $("message").textContent = text; }
  function done(state) {
    var texts = {
      paid: "支付成功 Paid", cancel: "已取消 Cancelled", fail: "支付失败 Payment failed",
      expired: "订单已过期 Expired", closed: "订单已关闭 Closed"
    };
    say(texts[state] || state);
    document.body.dataset.result = state;
    $("pay-button").hidden = state === "paid" || state === "expired" || state === "closed";
    if (cfg.returnUrl) { $("back").href = cfg.returnUrl; $("back").hidden = false; }
  }

  function poll(deadlineMs) {
    var until = Date.now() + (deadlineMs || 60000);
    clearTimeout(polling);
    (function tick() {
      fetch(base + "/status", { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (s) {
          if (s.status === "paid" || s.status === "expired" || s.status === "closed") { done(s.status); return; }
          if (Date.now() > until) { say("尚未确认 Not confirmed yet"); $("check-again").hidden = false; return; }
          polling = setTimeout(tick, 2000);
        })
        .catch(function () { polling = setTimeout(tick, 3000); });
    })();
  }

  function prepay(body) {
    return fetch(base + "/prepay", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-XSRFToken": xsrf() },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().then(function (j) { if (!r.ok) { throw j; } return j; });
    });
  }

  function onBridge(res) {
    var msg = (res && (res.err_msg || res.errMsg)) || "";
    if (/:ok$/.test(msg)) { say("正在确认 Confirming…"); poll(); }
    else if (/cancel/.test(msg)) { done("cancel"); }
    else { done("fail"); }
  }

  function invokeBridge(p) {
    var go = function () { window.WeixinJSBridge.invoke("getBrandWCPayRequest", p.bridge, onBridge); };
    if (window.WeixinJSBridge) { go(); }
    else { document.addEventListener("WeixinJSBridgeReady", go, { once: true }); }
  }

  function invokeJssdk(p) {
    var wx = window.wx;
    wx.config(p.wx_config);
    wx.ready(function () {
      var c = Object.assign({}, p.choose_wx_pay, {
        success: onBridge, cancel: function () { done("cancel"); }, fail: function () { done("fail"); }
      });
      wx.chooseWXPay(c);
    });
    wx.error(function () { done("fail"); });
  }

  function pay() {
    say("正在下单 Preparing…");
    var body = cfg.env === "wechat" ? { page_url: location.href.split("#")[0] } : {};
    prepay(body).then(function (p) {
      if (p.bridge) { (cfg.useJssdk && p.wx_config && window.wx) ? invokeJssdk(p) : invokeBridge(p); }
      else if (p.qr_svg) { $("qr-img").src = p.qr_svg; $("qr").hidden = false; say("等待支付 Waiting for payment"); poll(p.expires_at ? 15 * 60000 : 60000); }
      else if (p.mweb_url) { location.href = p.mweb_url; }
    }).catch(function (e) {
      say((e && e.message) || "网络错误，请重试 Network error, retry");
      if (e && e.code === "checkout_paid") { poll(); }
    });
  }

  $("pay-button").addEventListener("click", pay);
  $("check-again").addEventListener("click", function () { $("check-again").hidden = true; poll(); });
  if (cfg.status !== "open") { done(cfg.status); }
  else if (/\/result$/.test(location.pathname)) { say("正在确认 Confirming…"); poll(); }
  else if (cfg.env === "desktop") { pay(); }
})();
