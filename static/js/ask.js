// Progressive enhancement of the ask: show the amounts for the chosen
// currency and frequency, and let a typed amount override the presets.
(function () {
  "use strict";
  var form = document.getElementById("ask-form");
  if (!form) { return; }
  var currency = form.querySelector("#currency");
  var custom = form.querySelector("#custom_amount");

  function chosenFrequency() {
    var checked = form.querySelector("input[name=frequency]:checked");
    return checked ? checked.value : "monthly";
  }

  function showAmounts() {
    var shown = null;
    form.querySelectorAll("fieldset.amounts").forEach(function (set) {
      var match = set.dataset.currency === currency.value && set.dataset.frequency === chosenFrequency();
      set.hidden = !match;
      set.disabled = !match;
      if (match) { shown = set; }
    });
    if (shown && !shown.querySelector("input:checked") && !custom.value) {
      var preset = shown.querySelector("input[data-default]") || shown.querySelector("input");
      if (preset) { preset.checked = true; }
    }
  }

  form.addEventListener("change", function (event) {
    if (event.target.name === "frequency" || event.target === currency) { showAmounts(); }
    if (event.target.name === "amount") { custom.value = ""; }
  });
  custom.addEventListener("input", function () {
    if (custom.value) {
      form.querySelectorAll("input[name=amount]:checked").forEach(function (r) { r.checked = false; });
    }
  });
  showAmounts();
})();
