// The trigger form (templates/triggers/form.html): fields that apply only for some values of another field
// (data-show-when="verification" data-show-values="hmac") are hidden while they do not apply. Progressive
// enhancement: without this script every field shows, and the server ignores the ones that do not apply.
// A field showing an error is never hidden; hidden fields still submit their values.
(() => {
  "use strict";
  const form = document.querySelector("form.trigger-form");
  if (!form) return;
  const dependents = [...form.querySelectorAll("[data-show-when]")];
  const valueOf = (name) => {
    const input = form.elements.namedItem(name);
    return input ? input.value : null;
  };
  function sync() {
    for (const field of dependents) {
      const value = valueOf(field.dataset.showWhen);
      const applies = value === null || field.dataset.showValues.split(" ").includes(value);
      field.hidden = !applies && !field.classList.contains("has-error");
    }
  }
  const controls = new Set(dependents.map((f) => f.dataset.showWhen));
  form.addEventListener("change", (event) => { if (controls.has(event.target.name)) sync(); });
  sync();
})();
