// SANDBOX ONLY: plays the WeChat app in any browser. It defines what WeChat's
// in-app browser would (window.WeixinJSBridge; window.wx as the JS-SDK), so
// the checkout page runs its real code path unchanged; a sheet titled as a
// simulation asks the human what the shopper does, the simulated WeChat's
// shopper endpoint (/_sim/pay, /_sim/scan) is told, and the page's callback
// gets what WeChat would answer. The server serves this file only in sandbox
// mode (404 in live mode) and the page includes it only then.
(function () {
  "use strict";

  var cfg = {};
  try { cfg = JSON.parse(document.getElementById("page-config").textContent); } catch (e) { /* defaults */ }
  var T = cfg.strings || {};
  var SIM = (cfg.simulatorBase || "/_wechat") + "/_sim";

  function yuan(fen) {
    fen = Math.round(Number(fen) || 0);
    var whole = Math.floor(fen / 100), cents = fen % 100;
    return "¥" + String(whole).replace(/\B(?=(\d{3})+(?!\d))/g, ",") + "." + (cents < 10 ? "0" : "") + cents;
  }

  function post(path, body) {
    return fetch(SIM + path, {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
    }).then(function (r) { return r.json(); });
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text) { e.textContent = text; }
    return e;
  }

  // The sheet: resolves with "ok", "cancel" or "fail", as the human chooses.
  function sheet() {
    return new Promise(function (resolve) {
      var backdrop = el("div", "sim-backdrop");
      var box = el("div", "sim-sheet");
      box.setAttribute("role", "dialog");
      box.setAttribute("aria-modal", "true");
      box.setAttribute("aria-labelledby", "sim-title");
      box.setAttribute("aria-describedby", "sim-note");
      var title = el("h2", "sim-title", T.sim_title || "模拟微信支付 Simulated WeChat Pay");
      title.id = "sim-title";
      var note = el("p", "sim-note", T.sim_note || "");
      note.id = "sim-note";
      var buttons = [
        ["ok", "sim-pay", T.sim_pay || "Pay"],
        ["fail", "sim-fail", T.sim_fail || "Fail"],
        ["cancel", "sim-cancel", T.sim_cancel || "Cancel"]
      ].map(function (b) {
        var button = el("button", "sim-button " + b[1], b[2]);
        button.type = "button";
        button.setAttribute("data-outcome", b[0]);
        button.addEventListener("click", function () { close(b[0]); });
        return button;
      });
      box.appendChild(el("p", "sim-merchant", cfg.shopName || ""));
      box.appendChild(title);
      box.appendChild(el("p", "sim-amount", yuan(cfg.amountFen)));
      box.appendChild(note);
      box.appendChild(buttons[0]);
      var row = el("div", "sim-row");
      row.appendChild(buttons[2]);
      row.appendChild(buttons[1]);
      box.appendChild(row);
      backdrop.appendChild(box);
      document.body.appendChild(backdrop);
      document.body.classList.add("sim-open");
      function onKey(e) { if (e.key === "Escape") { close("cancel"); } }
      document.addEventListener("keydown", onKey);
      buttons[0].focus();
      var done = false;
      function close(outcome) {
        if (done) { return; }
        done = true;
        document.removeEventListener("keydown", onKey);
        backdrop.parentNode.removeChild(backdrop);
        document.body.classList.remove("sim-open");
        resolve(outcome);
      }
    });
  }

  function payWith(payload) {
    var prepayId = String(payload && payload["package"] || "").replace(/^prepay_id=/, "");
    return sheet().then(function (outcome) {
      return post("/pay", { prepay_id: prepayId, outcome: outcome, payload: payload });
    });
  }

  function kindOf(reply) {
    var msg = String(reply && reply.result && (reply.result.err_msg || reply.result.errMsg) || "");
    return /:ok$/.test(msg) ? "ok" : /cancel/.test(msg) ? "cancel" : "fail";
  }

  function refused(reply) {
    return reply && reply.ok === false && reply.error ? (T.sim_refused || "") + reply.error : "";
  }

  if (!window.WeixinJSBridge) {
    window.WeixinJSBridge = {
      invoke: function (name, payload, callback) {
        callback = typeof callback === "function" ? callback : function () {};
        if (name !== "getBrandWCPayRequest") {
          callback({ err_msg: name + ":fail not simulated" });
          return;
        }
        payWith(payload).then(function (reply) {
          var res = { err_msg: "get_brand_wcpay_request:" + kindOf(reply) };
          if (refused(reply)) { res.err_desc = refused(reply); }
          callback(res);
        }, function (e) {
          callback({ err_msg: "get_brand_wcpay_request:fail", err_desc: String(e && e.message || e) });
        });
      },
      on: function () {},
      call: function () {}
    };
    setTimeout(function () { document.dispatchEvent(new Event("WeixinJSBridgeReady")); }, 0);
  }

  if (!window.wx) {
    var readyQueue = [], errorHandlers = [], configured = false;
    window.wx = {
      config: function (c) {
        configured = false;
        var missing = ["appId", "timestamp", "nonceStr", "signature"].filter(function (k) { return !c || !c[k]; });
        if (c && (c.jsApiList || []).indexOf("chooseWXPay") < 0) { missing.push("jsApiList:chooseWXPay"); }
        setTimeout(function () {
          if (missing.length) {
            errorHandlers.forEach(function (fn) { fn({ errMsg: "config:fail missing " + missing.join(",") }); });
            return;
          }
          configured = true;
          readyQueue.splice(0).forEach(function (fn) { fn(); });
        }, 0);
      },
      ready: function (fn) { if (configured) { setTimeout(fn, 0); } else { readyQueue.push(fn); } },
      error: function (fn) { errorHandlers.push(fn); },
      chooseWXPay: function (opts) {
        opts = opts || {};
        var payload = {};
        ["timestamp", "nonceStr", "package", "signType", "paySign"].forEach(function (k) { payload[k] = opts[k]; });
        function answer(kind, res) {
          var fn = opts[kind === "ok" ? "success" : kind];
          if (typeof fn === "function") { fn(res); }
          if (typeof opts.complete === "function") { opts.complete(res); }
        }
        payWith(payload).then(function (reply) {
          var kind = kindOf(reply);
          var detail = refused(reply);
          answer(kind, { errMsg: "chooseWXPay:" + kind + (detail ? " " + detail : "") });
        }, function (e) {
          answer("fail", { errMsg: "chooseWXPay:fail " + String(e && e.message || e) });
        });
      }
    };
  }

  // The QR code: a desktop cannot scan itself, so offer a simulated scan.
  window.WeixinSandbox = {
    offerScan: function (codeUrl, container) {
      var button = container.querySelector(".sim-scan");
      if (!button) {
        button = el("button", "secondary sim-scan", T.sim_scan || "Simulate a WeChat scan");
        button.type = "button";
        container.appendChild(button);
        var message = el("p", "sim-message");
        message.setAttribute("role", "alert");
        container.appendChild(message);
        button.addEventListener("click", function () {
          message.textContent = "";
          sheet().then(function (outcome) {
            return post("/scan", { code_url: button.getAttribute("data-code-url"), outcome: outcome });
          }).then(function (reply) {
            message.textContent = refused(reply);
          }, function (e) {
            message.textContent = String(e && e.message || e);
          });
        });
      }
      button.setAttribute("data-code-url", codeUrl);
    }
  };
})();
