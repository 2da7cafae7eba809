/*
 * A mock of Stripe.js v3 for the local simulator: the Payment Element,
 * elements.submit(), confirmPayment() with 3D Secure, retrievePaymentIntent().
 * It talks to the adapted localstripe over the same HTTP routes Stripe.js
 * uses, so the page's real code path runs unchanged. Test tooling only.
 */
(function () {
  "use strict";
  var BASE = document.currentScript.src.replace(/\/js\.stripe\.com\/v3\/?$/, "");

  function intentId(clientSecret) {
    var m = /^((?:pi|seti)_[A-Za-z0-9]+)_secret_/.exec(clientSecret || "");
    return m ? m[1] : null;
  }

  function intentPath(clientSecret) {
    var id = intentId(clientSecret);
    return (id && id.indexOf("seti_") === 0 ? "/v1/setup_intents/" : "/v1/payment_intents/") + id;
  }

  // No Content-Type header: like Stripe.js (form-encoded), this stays a CORS
  // "simple" request. A JSON content type would need a preflight OPTIONS,
  // which localstripe does not answer. The server parses the body as JSON.
  function post(path, body) {
    return fetch(BASE + path, {
      method: "POST",
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (json) {
        return { status: r.status, body: json };
      });
    });
  }

  function modal(text, yes, no) {
    return new Promise(function (resolve) {
      var box = document.createElement("div");
      box.setAttribute("role", "dialog");
      box.setAttribute("aria-modal", "true");
      box.setAttribute("aria-label", "3D Secure");
      Object.assign(box.style, { position: "fixed", inset: "20% 10% auto 10%", background: "#fff",
        border: "3px solid #888", padding: "16px", zIndex: 1000, textAlign: "center" });
      var p = document.createElement("p");
      p.textContent = text;
      box.appendChild(p);
      [[yes, true], [no, false]].forEach(function (pair) {
        var b = document.createElement("button");
        b.type = "button";
        b.textContent = pair[0];
        b.style.margin = "4px";
        b.addEventListener("click", function () { box.remove(); resolve(pair[1]); });
        box.appendChild(b);
      });
      document.body.appendChild(box);
      box.querySelector("button").focus();
    });
  }

  function field(label, name, attrs) {
    var wrap = document.createElement("label");
    wrap.className = attrs.wide ? "wide" : "";
    wrap.appendChild(document.createTextNode(label));
    var input = document.createElement("input");
    input.type = "text";
    input.name = "sim-" + name;
    input.autocomplete = attrs.autocomplete || "off";
    input.inputMode = attrs.inputmode || "text";
    input.placeholder = attrs.placeholder || "";
    wrap.appendChild(input);
    return { wrap: wrap, input: input };
  }

  function PaymentElement(elements, options) {
    this._elements = elements;
    this._options = options || {};
    this._inputs = {};
    this._listeners = {};
    this._type = "card";
  }
  PaymentElement.prototype.mount = function (target) {
    var node = typeof target === "string" ? document.querySelector(target) : target;
    var self = this;
    var outer = document.createElement("div");
    var root = document.createElement("div");
    root.className = "sim-element";
    root.setAttribute("role", "group");
    root.setAttribute("aria-label", "Card (simulated)");
    var sepa = document.createElement("div");
    sepa.className = "sim-element";
    sepa.setAttribute("role", "group");
    sepa.setAttribute("aria-label", "SEPA Direct Debit (simulated)");
    sepa.hidden = true;
    var ibanField = field("IBAN", "iban", { wide: true, autocomplete: "off", placeholder: "DE89 3704 0044 0532 0130 00" });
    this._inputs.iban = ibanField.input;
    sepa.appendChild(ibanField.wrap);
    var tabs = document.createElement("div");
    tabs.className = "sim-tabs";
    tabs.setAttribute("role", "radiogroup");
    tabs.setAttribute("aria-label", "Payment method (simulated)");
    tabs.hidden = true;
    [["card", "Card"], ["sepa_debit", "SEPA Direct Debit"]].forEach(function (spec) {
      var label = document.createElement("label");
      var radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "sim-method";
      radio.value = spec[0];
      radio.checked = spec[0] === "card";
      radio.addEventListener("change", function () {
        self._type = radio.value;
        root.hidden = radio.value !== "card";
        sepa.hidden = radio.value !== "sepa_debit";
        self._emit("change", { complete: self._complete(), value: { type: radio.value } });
      });
      label.appendChild(radio);
      label.appendChild(document.createTextNode(" " + spec[1]));
      tabs.appendChild(label);
    });
    outer.appendChild(tabs);
    outer.appendChild(root);
    outer.appendChild(sepa);
    var secret = this._elements._options.clientSecret;
    if (secret) {
      fetch(BASE + intentPath(secret) + "?key=" + encodeURIComponent(this._elements._stripe._key) +
        "&client_secret=" + encodeURIComponent(secret))
        .then(function (r) { return r.json(); })
        .then(function (intent) {
          if ((intent.payment_method_types || []).indexOf("sepa_debit") !== -1) { tabs.hidden = false; }
        }).catch(function () {});
    }
    [["Card number", "number", { wide: true, inputmode: "numeric", autocomplete: "cc-number", placeholder: "4242 4242 4242 4242" }],
     ["Expiry (MM / YY)", "expiry", { inputmode: "numeric", autocomplete: "cc-exp", placeholder: "12 / 34" }],
     ["CVC", "cvc", { inputmode: "numeric", autocomplete: "cc-csc", placeholder: "123" }]
    ].forEach(function (spec) {
      var f = field(spec[0], spec[1], spec[2]);
      self._inputs[spec[1]] = f.input;
      f.input.addEventListener("input", function () { self._emit("change", { complete: self._complete() }); });
      root.appendChild(f.wrap);
    });
    node.appendChild(outer);
    this._root = outer;
    setTimeout(function () { self._emit("ready", {}); }, 0);
  };
  PaymentElement.prototype.on = function (name, fn) {
    (this._listeners[name] = this._listeners[name] || []).push(fn);
  };
  PaymentElement.prototype._emit = function (name, ev) {
    (this._listeners[name] || []).forEach(function (fn) { fn(ev); });
  };
  PaymentElement.prototype._values = function () {
    var number = (this._inputs.number.value || "").replace(/\s+/g, "");
    var exp = (this._inputs.expiry.value || "").replace(/\s+/g, "").split("/");
    return { number: number, exp_month: exp[0] || "", exp_year: exp[1] || "", cvc: (this._inputs.cvc.value || "").trim() };
  };
  PaymentElement.prototype._complete = function () {
    if (this._type === "sepa_debit") { return (this._inputs.iban.value || "").replace(/\s+/g, "").length >= 14; }
    var v = this._values();
    return v.number.length >= 12 && v.exp_month && v.exp_year && v.cvc.length >= 3;
  };
  PaymentElement.prototype._methodData = function (extra) {
    if (this._type === "sepa_debit") {
      return Object.assign({}, extra || {}, { type: "sepa_debit",
        sepa_debit: { iban: (this._inputs.iban.value || "").replace(/\s+/g, "") } });
    }
    var v = this._values();
    return Object.assign({}, extra || {}, { type: "card",
      card: { number: v.number, exp_month: v.exp_month, exp_year: v.exp_year, cvc: v.cvc } });
  };
  PaymentElement.prototype.destroy = function () { if (this._root) { this._root.remove(); } };

  function Elements(stripe, options) {
    this._stripe = stripe;
    this._options = options || {};
    this._payment = null;
  }
  Elements.prototype.create = function (type, options) {
    if (type !== "payment") { throw new Error("simulator: only the Payment Element is offered"); }
    this._payment = new PaymentElement(this, options);
    return this._payment;
  };
  Elements.prototype.getElement = function (type) { return type === "payment" ? this._payment : null; };
  Elements.prototype.submit = function () {
    var el = this._payment;
    if (!el || !el._complete()) {
      return Promise.resolve({ error: { type: "validation_error", code: "incomplete", message: "Your card details are incomplete." } });
    }
    return Promise.resolve({});
  };

  function StripeMock(key, options) {
    this._key = key;
    this._options = options || {};
  }
  StripeMock.prototype.elements = function (options) { return new Elements(this, options); };
  StripeMock.prototype.retrievePaymentIntent = function (clientSecret) {
    var id = intentId(clientSecret);
    return fetch(BASE + "/v1/payment_intents/" + id + "?key=" + encodeURIComponent(this._key) +
      "&client_secret=" + encodeURIComponent(clientSecret))
      .then(function (r) { return r.json(); })
      .then(function (json) { return json.error ? { error: json.error } : { paymentIntent: json }; });
  };
  StripeMock.prototype.confirmPayment = function (args) {
    var key = this._key;
    var elements = args.elements;
    var clientSecret = args.clientSecret || (elements && elements._options.clientSecret);
    var id = intentId(clientSecret);
    var params = args.confirmParams || {};
    var methodData = elements._payment._methodData(params.payment_method_data);
    function finish(intent) {
      if (args.redirect !== "if_required") {
        var sep = params.return_url.indexOf("?") === -1 ? "?" : "&";
        window.location.assign(params.return_url + sep + "payment_intent=" + intent.id +
          "&payment_intent_client_secret=" + encodeURIComponent(clientSecret) +
          "&redirect_status=" + (intent.status === "succeeded" ? "succeeded" : "failed"));
        return new Promise(function () {});
      }
      return { paymentIntent: intent };
    }
    return post("/v1/payment_intents/" + id + "/confirm", {
      key: key, client_secret: clientSecret, payment_method_data: methodData, return_url: params.return_url
    }).then(function (res) {
      if (res.body.error) { return { error: res.body.error }; }
      var intent = res.body;
      if (intent.status !== "requires_action") { return finish(intent); }
      return modal("3D Secure (simulated): approve this payment?", "Complete authentication", "Fail authentication")
        .then(function (ok) {
          return post("/v1/payment_intents/" + id + "/_authenticate", { key: key, client_secret: clientSecret, success: ok });
        }).then(function (auth) {
          if (auth.body.error) { return { error: auth.body.error }; }
          if (auth.body.status === "succeeded" || auth.body.status === "processing") { return finish(auth.body); }
          return { error: { type: "card_error", code: "payment_intent_authentication_failure",
            message: "We are unable to authenticate your payment method.", payment_intent: auth.body } };
        });
    }).catch(function (err) {
      return { error: { type: "api_connection_error", message: String(err) } };
    });
  };

  StripeMock.prototype.confirmSetup = function (args) {
    var key = this._key;
    var elements = args.elements;
    var clientSecret = args.clientSecret || (elements && elements._options.clientSecret);
    var id = intentId(clientSecret);
    var params = args.confirmParams || {};
    var methodData = elements._payment._methodData(params.payment_method_data);
    function done(intent) {
      if (args.redirect !== "if_required") {
        window.location.assign(params.return_url);
        return new Promise(function () {});
      }
      return { setupIntent: intent };
    }
    return post("/v1/setup_intents/" + id + "/confirm", {
      key: key, client_secret: clientSecret, payment_method_data: methodData
    }).then(function (res) {
      if (res.body.error) { return { error: res.body.error }; }
      if (res.body.status !== "requires_action") { return done(res.body); }
      return modal("3D Secure (simulated): approve saving this card?", "Complete authentication", "Fail authentication")
        .then(function (ok) {
          if (!ok) {
            return { error: { type: "card_error", code: "setup_intent_authentication_failure",
              message: "We are unable to authenticate your payment method." } };
          }
          return post("/v1/setup_intents/" + id + "/confirm", { key: key, client_secret: clientSecret })
            .then(function (again) { return again.body.error ? { error: again.body.error } : done(again.body); });
        });
    }).catch(function (err) {
      return { error: { type: "api_connection_error", message: String(err) } };
    });
  };
  StripeMock.prototype.handleNextAction = function (args) {
    var key = this._key;
    var clientSecret = args.clientSecret;
    var id = intentId(clientSecret);
    return modal("3D Secure (simulated): approve this payment?", "Complete authentication", "Fail authentication")
      .then(function (ok) {
        return post("/v1/payment_intents/" + id + "/_authenticate", { key: key, client_secret: clientSecret, success: ok });
      }).then(function (auth) {
        if (auth.body.error) { return { error: auth.body.error }; }
        if (auth.body.status === "succeeded" || auth.body.status === "processing") { return { paymentIntent: auth.body }; }
        return { error: { type: "card_error", code: "payment_intent_authentication_failure",
          message: "We are unable to authenticate your payment method.", payment_intent: auth.body } };
      }).catch(function (err) {
        return { error: { type: "api_connection_error", message: String(err) } };
      });
  };

  window.Stripe = function (key, options) { return new StripeMock(key, options); };
})();
