/* The ask under an article. Paste where it should appear:
 *   <div data-donations-ask data-article="ARTICLE-ID"><a href="https://DONATIONS/support">Support us</a></div>
 *   <script src="https://DONATIONS/embed.js" async></script>
 * Without JavaScript the link stays. Events (README, "The ask under every article"):
 * "donations:shown", "donations:dismissed", "donations:used" as CustomEvents on the
 * element (they bubble) and as window.postMessage({type, ...detail}) to the page's origin.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !window.fetch) { return; }
  var origin = new URL(script.src).origin;
  var hosts = document.querySelectorAll("[data-donations-ask]");
  if (!hosts.length) { return; }
  var seq = 0;
  var DAY = 864e5;
  var KEY = "donations:ask";
  var COUNTED = { shown: "impression", dismissed: "dismissal" };
  var eventsUrl = "";

  // What this browser remembers, on the article's origin only (no cookie): when the
  // ask was shown, when it was closed, and the supporter mark from a thank-you page.
  function load() {
    try { return JSON.parse(window.localStorage.getItem(KEY)) || {}; } catch (e) { return {}; }
  }
  function save(s) {
    try { window.localStorage.setItem(KEY, JSON.stringify(s)); } catch (e) { /* private mode */ }
  }
  var mark = /[#&]dn-supporter=(\d{1,12}\.[0-9a-f]{32})/.exec(window.location.hash);
  if (mark) {
    var kept = load();
    kept.supporter = mark[1];
    save(kept);
    history.replaceState(history.state, "", window.location.pathname + window.location.search);
  }

  function allowed(caps) {
    var s = load(), now = Date.now();
    if (s.supporter && parseInt(s.supporter, 10) * 1000 > now) { return false; }
    if (s.dismissed && now - s.dismissed < caps.dismiss_days * DAY) { return false; }
    var views = (s.views || []).filter(function (t) { return now - t < caps.period_days * DAY; });
    if (views.length >= caps.views) { return false; }
    s.views = views.concat(now);
    save(s);
    return true;
  }

  // A/B tests: this browser's random id (localStorage, never a cookie) picks the variant,
  // stable across visits. Same arithmetic as reader_bucket in donations/embed/experiments/services.py.
  function bucket(seed, rid) {
    var s = seed + ":" + rid, h = 0x811c9dc5;
    for (var i = 0; i < s.length; i++) { h = Math.imul(h ^ s.charCodeAt(i), 0x01000193); }
    h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35);
    return ((h ^ (h >>> 16)) >>> 0) % 100;
  }
  function readerId() {
    var s = load();
    if (!/^[0-9a-f]{32}$/.test(s.rid || "")) {
      var b = new Uint8Array(16);
      if (window.crypto && crypto.getRandomValues) { crypto.getRandomValues(b); } else {
        for (var i = 0; i < 16; i++) { b[i] = Math.random() * 256; }
      }
      s.rid = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
      save(s);
    }
    return s.rid;
  }
  function merge(a, b) {
    Object.keys(b).forEach(function (k) {
      var v = b[k];
      a[k] = v && typeof v === "object" && !Array.isArray(v) && a[k] ? merge(a[k], v) : v;
    });
    return a;
  }
  // The variant's changes merged into the configuration; a stopped variant's readers
  // see the ask as it is, outside the test.
  function assign(cfg) {
    var x = cfg.experiment;
    if (!x) { return cfg; }
    var b = bucket(x.seed, readerId()), upto = 0;
    for (var i = 0; i < x.variants.length; i++) {
      var v = x.variants[i];
      upto += v.share;
      if (b < upto) {
        if (!v.stopped) { merge(cfg, v.patch); cfg.variant = v.value; }
        break;
      }
    }
    return cfg;
  }

  function count(event, detail) {
    if (!eventsUrl || !navigator.sendBeacon) { return; }
    var body = { event: event, article: detail.article, campaign: detail.campaign, variant: detail.variant };
    navigator.sendBeacon(eventsUrl, new Blob([JSON.stringify(body)], { type: "text/plain" }));
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (attrs[k] !== null && attrs[k] !== undefined) { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function emit(host, type, detail) {
    count(COUNTED[type] || detail.action, detail);
    host.dispatchEvent(new CustomEvent("donations:" + type, { bubbles: true, detail: detail }));
    var message = { type: "donations:" + type };
    Object.keys(detail).forEach(function (k) { message[k] = detail[k]; });
    try { window.postMessage(message, window.location.origin); } catch (e) { /* opaque origin */ }
  }

  function regionCurrency(cfg) {
    var tags = navigator.languages || [navigator.language || ""];
    for (var i = 0; i < tags.length; i++) {
      var region = (tags[i].split("-")[1] || "").toUpperCase();
      if (cfg.currency_by_region[region]) { return cfg.currency_by_region[region]; }
    }
    return cfg.default_currency;
  }

  // The running campaign's progress, from the ledger (in the cached configuration).
  function meter(c, id) {
    if (!c) { return document.createTextNode(""); }
    var bar = el("progress", { id: id + "-m", max: String(c.goal), value: String(Math.min(c.raised, c.goal)) });
    return el("div", { "class": "dn-meter" }, [
      el("label", { "for": id + "-m" }, [c.title + ": " + c.text]), bar
    ]);
  }

  function render(host, cfg) {
    var id = "dn-" + (++seq);
    var t = cfg.text;
    var data = host.dataset;
    var page = window.location.origin + window.location.pathname;
    var detail = {
      article: (data.article || page).slice(0, 500),
      campaign: data.campaign || (cfg.campaign ? cfg.campaign.slug : ""),
      variant: cfg.variant || data.variant || ""
    };
    var state = {
      frequency: cfg.amounts[cfg.default_currency][cfg.default_frequency] ? cfg.default_frequency : "once",
      currency: regionCurrency(cfg)
    };
    if (!cfg.amounts[state.currency]) { state.currency = cfg.default_currency; }

    var frequencies = el("fieldset", { "class": "dn-choice dn-n3" }, [el("legend", {}, [t.how_often])]);
    ["once", "monthly", "annual"].forEach(function (f) {
      var input = el("input", { type: "radio", name: id + "-f", id: id + "-f-" + f, value: f });
      input.checked = f === state.frequency;
      frequencies.appendChild(input);
      frequencies.appendChild(el("label", { "for": id + "-f-" + f }, [t[f]]));
    });
    var presets = el("fieldset", { "class": "dn-choice dn-amounts" });
    var select = el("select", { id: id + "-c" });
    Object.keys(cfg.amounts).forEach(function (code) {
      var option = el("option", { value: code }, [code]);
      option.selected = code === state.currency;
      select.appendChild(option);
    });
    var other = el("input", {
      type: "text", inputmode: "decimal", id: id + "-o", maxlength: "20", autocomplete: "off"
    });
    var marks = el("ul", { "class": "dn-marks", "aria-label": t.methods });
    var remind = el("a", { href: cfg.urls.remind, "class": "dn-remind" }, [t.remind]);
    var close = el("button", { type: "button", "class": "dn-close", title: t.close }, [
      el("span", { "aria-hidden": "true" }, ["\u00d7"]), el("span", { "class": "dn-hidden" }, [t.close])
    ]);
    var form = el("form", { "class": "dn-form", action: cfg.urls.checkout, method: "get" }, [
      frequencies, presets,
      el("div", { "class": "dn-row" }, [
        el("div", {}, [el("label", { "for": id + "-c" }, [t.currency]), select]),
        el("div", {}, [el("label", { "for": id + "-o" }, [t.other_amount]), other])
      ]),
      marks,
      el("button", { type: "submit", "class": "dn-continue" }, [t["continue"]])
    ]);
    var box = el("section", { "class": "dn-ask", lang: cfg.lang, "aria-labelledby": id + "-h" }, [
      close,
      el("h2", { id: id + "-h" }, [t.headline]),
      el("p", { "class": "dn-appeal" }, [t.appeal]),
      meter(cfg.campaign, id),
      form,
      el("p", { "class": "dn-later" }, [t.not_ready + " ", remind])
    ]);

    function rule() { return cfg.amounts[state.currency][state.frequency]; }

    function drawPresets() {
      presets.textContent = "";
      presets.appendChild(el("legend", {}, [t.amount]));
      var r = rule();
      if (!r) { return; }
      presets.className = "dn-choice dn-amounts dn-n" + r.presets.length;
      r.presets.forEach(function (p, i) {
        var input = el("input", { type: "radio", name: id + "-a", id: id + "-a-" + i, value: p[0] });
        input.checked = p[0] === r["default"];
        presets.appendChild(input);
        presets.appendChild(el("label", { "for": id + "-a-" + i }, [p[1]]));
      });
      marks.textContent = "";
      cfg.methods.forEach(function (m) {
        if (m.currencies.indexOf("*") >= 0 || m.currencies.indexOf(state.currency) >= 0) {
          marks.appendChild(el("li", { "class": "dn-mark dn-mark-" + m.id }, [m.label]));
        }
      });
    }

    function choice() {
      var checked = presets.querySelector("input:checked");
      var params = new URLSearchParams({
        frequency: state.frequency,
        currency: state.currency,
        amount: other.value.trim() || (checked ? checked.value : ""),
        source: page.slice(0, 500)
      });
      ["article", "campaign", "variant"].forEach(function (k) { if (detail[k]) { params.set(k, detail[k]); } });
      return params;
    }

    frequencies.addEventListener("change", function (e) { state.frequency = e.target.value; drawPresets(); });
    select.addEventListener("change", function () { state.currency = select.value; drawPresets(); });
    presets.addEventListener("change", function () { other.value = ""; });
    function go(params) {
      emit(host, "used", Object.assign({ action: "continue" }, detail));
      window.location.assign(cfg.urls.checkout + "?" + params);
    }

    // Once -> monthly, offered once per view when switched on and a preset was chosen.
    var offered = false;
    function offer(params) {
      var u = cfg.upsell, monthly = u && u.offers[state.currency] && u.offers[state.currency][params.get("amount")];
      if (!monthly || offered || state.frequency !== "once" || other.value.trim()) { return false; }
      offered = true;
      count("upsell_offered", detail);
      function answer(accepted) {
        count(accepted ? "upsell_accepted" : "upsell_declined", detail);
        if (accepted) { params.set("frequency", "monthly"); params.set("amount", monthly[0]); }
        params.set("upsell", accepted ? "accepted" : "declined");
        go(params);
      }
      var yes = el("button", { type: "button", "class": "dn-continue" }, [u.text.accept.replace("%(amount)s", monthly[1])]);
      var no = el("button", { type: "button", "class": "dn-secondary" }, [u.text.decline]);
      yes.addEventListener("click", function () { answer(true); });
      no.addEventListener("click", function () { answer(false); });
      var prompt = el("div", { "class": "dn-upsell", role: "group", "aria-labelledby": id + "-u", tabindex: "-1" }, [
        el("p", { id: id + "-u" }, [u.text.question]), yes, no
      ]);
      form.replaceWith(prompt);
      prompt.focus();
      return true;
    }

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var params = choice();
      if (!offer(params)) { go(params); }
    });
    remind.addEventListener("click", function () {
      remind.href = cfg.urls.remind + "?" + choice();
      emit(host, "used", Object.assign({ action: "remind" }, detail));
    });
    close.addEventListener("click", function () {
      var s = load();
      s.dismissed = Date.now();
      save(s);
      box.remove();
      emit(host, "dismissed", detail);
    });

    drawPresets();
    host.textContent = "";
    host.appendChild(box);
    emit(host, "shown", detail);
  }

  if (!document.querySelector("link[data-donations-css]")) {
    document.head.appendChild(el("link", { rel: "stylesheet", href: origin + "/embed.css", "data-donations-css": "" }));
  }
  var lang = (hosts[0].dataset.lang || document.documentElement.lang || "en").toLowerCase();
  fetch(origin + "/embed/config.json?lang=" + encodeURIComponent(lang.split("-")[0]), { credentials: "omit" })
    .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
    .then(function (cfg) {
      eventsUrl = cfg.urls.events;
      // One view per page, however many places it has for the ask.
      var show = allowed(cfg.caps);
      if (show) { assign(cfg); }
      Array.prototype.forEach.call(hosts, function (h) {
        if (show) { render(h, cfg); } else { h.hidden = true; }
      });
    })
    .catch(function () { /* the fallback link stays */ });
})();
