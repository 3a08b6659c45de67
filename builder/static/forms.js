// Small progressive enhancements of the plain HTML forms (every form also works without this script).

// <form class="confirm" data-confirm="…">: ask before destructive posts.
for (const form of document.querySelectorAll('form[data-confirm]')) {
  form.addEventListener('submit', (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}

// Page upload: the typed width/height fields only when "Typed size" is chosen.
const preset = document.getElementById('preset');
if (preset) {
  const typed = document.querySelectorAll('[data-show-when]');
  const sync = () => {
    for (const el of typed) {
      const on = preset.value === el.dataset.showWhen;
      el.hidden = !on;
      for (const input of el.querySelectorAll('input')) {
        input.required = on;
        input.disabled = !on; // neither validated nor sent while hidden
      }
    }
  };
  preset.addEventListener('change', sync);
  sync();
  // A PDF knows its own size: choosing one selects "From the file" unless a size is typed. An image keeps the
  // designer's last choice (the server remembers it); "From the file" reads the image's dpi.
  const file = preset.form.querySelector('input[type=file]');
  file?.addEventListener('change', () => {
    const chosen = file.files[0];
    if (!chosen) return;
    const isPdf = chosen.type === 'application/pdf' || /\.pdf$/i.test(chosen.name);
    if (isPdf && preset.value !== 'custom') preset.value = '';
    sync();
  });
}

// Add-overlay form: show the fields of the chosen kind (and model source) only.
const addForm = document.getElementById('add-overlay');
if (addForm) {
  const kind = addForm.querySelector('[name=kind]');
  const file = addForm.querySelector('[name=file]');
  // kind -> the picker's accept, rendered by the server from the table it checks uploads against
  const ACCEPT = JSON.parse(addForm.dataset.accept || '{}');
  const sync = () => {
    const k = kind.value;
    const source = addForm.querySelector('[name=source]:checked')?.value || 'upload';
    for (const el of addForm.querySelectorAll('[data-kinds]')) {
      el.hidden = !el.dataset.kinds.split(' ').includes(k);
    }
    for (const el of addForm.querySelectorAll('[data-source]')) {
      if (k === 'model3d') el.hidden = el.dataset.source !== source;
    }
    // A hidden field is neither validated nor sent (a hidden required or invalid one blocks the post with only a
    // console error, "An invalid form control is not focusable").
    for (const c of addForm.querySelectorAll('input:not([type=hidden]), select, textarea')) {
      c.disabled = c.closest('[hidden]') !== null;
    }
    const needsFile = k !== 'link' && !(k === 'model3d' && source === 'stock');
    file.required = needsFile;
    file.accept = ACCEPT[k] || '';
    addForm.querySelector('[name=url]').required = k === 'link';
    const autoplay = addForm.querySelector('[name=autoplay]');
    if (autoplay) autoplay.checked = k !== 'audio'; // a sound starts on a tap by default
  };
  kind.addEventListener('change', sync);
  for (const r of addForm.querySelectorAll('[name=source]')) r.addEventListener('change', sync);
  sync();
}

// New publication: propose the address from the name ("Báo Yên Bái" -> "bao-yen-bai") until it is edited by hand.
const slug = document.querySelector('input[name=slug]');
const pubName = slug?.form.querySelector('input[name=name]');
if (slug && pubName) {
  let touched = false;
  slug.addEventListener('input', () => { touched = slug.value !== ''; });
  pubName.addEventListener('input', () => {
    if (touched) return;
    slug.value = pubName.value.normalize('NFD').replace(/[\u0300-\u036f]/g, '').replace(/[đĐ]/g, 'd')
      .toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 80);
  });
}

// A publish takes seconds per page: the button says so and cannot be pressed twice meanwhile.
for (const button of document.querySelectorAll('button[data-busy]')) {
  button.form.addEventListener('submit', () => {
    button.disabled = true;
    button.textContent = button.dataset.busy;
    button.setAttribute('aria-busy', 'true');
  });
}
