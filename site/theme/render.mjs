// Static HTML for the cvcourse site, rendered from what Jupyter Book 2 (mystmd) built.
//
// mystmd runs this as the site template's `build.render` command (template.yml) during
// `jupyter-book build --html`, with two variables:
//   CONTENT_CDN      the content server: /config.json, /content/<slug>.json, and the site's public files at /
//   BUILD_DIRECTORY  where the HTML goes (site/_build/html)
// Each page becomes <slug>.html (the first page index.html) with the table of contents, previous/next links
// and a search box (search.js over search-index.js, both written here, so the site works from file:// too).
// Math arrives already typeset by mystmd (KaTeX HTML); KaTeX's CSS and fonts are copied from Debian's libjs-katex.
// Notebook outputs: the richest static form of each output (image, HTML, text); an interactive widget
// without a static form gets a note instead of its Python repr.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const cdn = process.env.CONTENT_CDN;
const out = process.env.BUILD_DIRECTORY;
if (!cdn || !out) {
  console.error('render.mjs is run by `jupyter-book build --html` (it needs CONTENT_CDN and BUILD_DIRECTORY)');
  process.exit(2);
}

async function getJson(url) {
  const resp = await fetch(cdn + url);
  if (!resp.ok) throw new Error(`GET ${url} from the content server: HTTP ${resp.status}`);
  return resp.json();
}

const esc = (s) => String(s ?? '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const stripAnsi = (s) => String(s ?? '').replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
const asText = (v) => (Array.isArray(v) ? v.join('') : String(v ?? ''));
const pageFile = (slug, indexSlug) => (slug === indexSlug ? 'index.html' : `${slug}.html`);

// Assets (figures, images) the pages use, fetched from the content server once each.
const assets = new Set();
function assetUrl(url) {
  if (!url || /^[a-z]+:/i.test(url) || url.startsWith('#')) return url;
  const clean = url.replace(/^\/+/, '');
  assets.add(clean);
  return `build/${clean}`;
}

function internalUrl(node, ctx) {
  const url = node.url ?? '';
  if (/^[a-z]+:/i.test(url) || url.startsWith('#')) return url;
  if (node.internal || ctx.slugs.has(url.replace(/^\//, '').split('#')[0])) {
    const [slug, hash] = url.replace(/^\//, '').split('#');
    const target = slug ? pageFile(slug, ctx.indexSlug) : '';
    return target + (hash ? `#${hash}` : '');
  }
  if (node.static || url.startsWith('/')) return assetUrl(url);
  return url;
}

// ---- notebook outputs -------------------------------------------------------------------------------
const WIDGET = 'application/vnd.jupyter.widget-view+json';

function mimeHtml(data) {
  const get = (mime) => data[mime];
  for (const mime of ['image/png', 'image/jpeg', 'image/gif', 'image/svg+xml']) {
    const item = get(mime);
    if (!item) continue;
    if (item.path) return `<img class="output-image" src="${esc(assetUrl(item.path))}" alt="figure">`;
    if (mime === 'image/svg+xml' && item.content) return asText(item.content);
    if (item.content) return `<img class="output-image" src="data:${mime};base64,${asText(item.content).trim()}" alt="figure">`;
  }
  if (get('text/html')?.content) return `<div class="output-html">${asText(get('text/html').content)}</div>`;
  if (get('text/markdown')?.content) return `<pre class="output-text">${esc(asText(get('text/markdown').content))}</pre>`;
  if (get(WIDGET)) {
    return '<div class="output-widget">Interactive widget: open this notebook in JupyterLab (<code>make lab</code>) to use it.</div>';
  }
  if (get('text/plain')?.content) return `<pre class="output-text">${esc(stripAnsi(asText(get('text/plain').content)))}</pre>`;
  return '';
}

function outputHtml(node) {
  const d = node.jupyter_data ?? {};
  switch (d.output_type) {
    case 'stream': {
      const text = stripAnsi(asText(d.text)).replace(/^.*\r(?!\n)/gm, ''); // progress bars: keep the last state
      return text.trim() ? `<pre class="output-stream output-${esc(d.name)}">${esc(text)}</pre>` : '';
    }
    case 'error':
      return `<pre class="output-error">${esc(stripAnsi(asText(d.traceback) || `${d.ename}: ${d.evalue}`))}</pre>`;
    case 'display_data':
    case 'execute_result':
      return mimeHtml(d.data ?? {});
    default:
      return '';
  }
}

// ---- MyST AST -> HTML ----------------------------------------------------------------------------------
function children(node, ctx) {
  return (node.children ?? []).map((c) => render(c, ctx)).join('');
}

function render(node, ctx) {
  const kids = () => children(node, ctx);
  const id = node.html_id ? ` id="${esc(node.html_id)}"` : '';
  switch (node.type) {
    case 'root':
      return kids();
    case 'block':
      return `<div class="block ${esc(node.kind ?? '')}"${id}>${kids()}</div>`;
    case 'text':
      return esc(node.value);
    case 'paragraph':
      return `<p>${kids()}</p>`;
    case 'heading': {
      const level = Math.min(6, Math.max(1, node.depth ?? 2));
      ctx.headings.push(node);
      return `<h${level}${id}>${kids()}</h${level}>`;
    }
    case 'emphasis':
      return `<em>${kids()}</em>`;
    case 'strong':
      return `<strong>${kids()}</strong>`;
    case 'delete':
      return `<del>${kids()}</del>`;
    case 'subscript':
      return `<sub>${kids()}</sub>`;
    case 'superscript':
      return `<sup>${kids()}</sup>`;
    case 'inlineCode':
      return `<code>${esc(node.value)}</code>`;
    case 'break':
      return '<br>';
    case 'thematicBreak':
      return '<hr>';
    case 'blockquote':
      return `<blockquote>${kids()}</blockquote>`;
    case 'list': {
      const tag = node.ordered ? 'ol' : 'ul';
      const start = node.ordered && node.start && node.start !== 1 ? ` start="${node.start}"` : '';
      return `<${tag}${start}>${kids()}</${tag}>`;
    }
    case 'listItem':
      return `<li>${kids()}</li>`;
    case 'link':
    case 'crossReference': {
      const href = node.type === 'crossReference' ? `#${node.html_id ?? node.identifier ?? ''}` : internalUrl(node, ctx);
      return `<a href="${esc(href)}">${kids() || esc(node.url)}</a>`;
    }
    case 'image':
      return `<img src="${esc(assetUrl(node.urlOptimized ?? node.url))}" alt="${esc(node.alt ?? '')}"${node.width ? ` style="width:${esc(node.width)}"` : ''}>`;
    case 'code':
      return `<pre class="code${node.executable ? ' cell-input' : ''}"><code class="language-${esc(node.lang ?? '')}">${esc(node.value)}</code></pre>`;
    case 'outputs': {
      const html = kids();
      return html ? `<div class="cell-outputs">${html}</div>` : '';
    }
    case 'output':
      return outputHtml(node);
    case 'math':
    case 'inlineMath':
      return node.html ?? esc(node.value);
    case 'html':
      return node.value ?? '';
    case 'table':
      return `<div class="table-wrap"><table>${kids()}</table></div>`;
    case 'tableRow':
      return `<tr>${kids()}</tr>`;
    case 'tableCell': {
      const tag = node.header ? 'th' : 'td';
      const align = node.align ? ` style="text-align:${esc(node.align)}"` : '';
      return `<${tag}${align}>${kids()}</${tag}>`;
    }
    case 'admonition':
      return `<aside class="admonition ${esc(node.kind ?? 'note')}">${kids()}</aside>`;
    case 'admonitionTitle':
      return `<p class="admonition-title">${kids()}</p>`;
    case 'container':
      return `<figure${id}>${kids()}</figure>`;
    case 'caption':
      return `<figcaption>${kids()}</figcaption>`;
    case 'footnoteReference':
      return `<sup><a href="#fn-${esc(node.identifier)}">${esc(node.enumerator ?? node.label)}</a></sup>`;
    case 'footnoteDefinition':
      return `<div class="footnote" id="fn-${esc(node.identifier)}">${esc(node.enumerator ?? '')} ${kids()}</div>`;
    case 'comment':
    case 'mystTarget':
    case 'mystComment':
      return '';
    default:
      return kids();
  }
}

// Plain text of a page for the search index.
function plainText(node) {
  if (node.type === 'output' || node.type === 'code') return '';
  if (node.type === 'text' || node.type === 'inlineCode' || node.type === 'inlineMath') return node.value ?? '';
  const inner = (node.children ?? []).map(plainText).join('');
  return ['paragraph', 'heading', 'listItem', 'tableRow', 'block'].includes(node.type) ? inner + '\n' : inner;
}

// ---- pages ------------------------------------------------------------------------------------------------
function tocHtml(project, currentSlug, indexSlug) {
  const items = [];
  items.push(`<li class="toc-page${currentSlug === indexSlug ? ' current' : ''}"><a href="index.html">${esc(project.title)}</a></li>`);
  for (const page of project.pages) {
    const level = page.level ?? 1;
    if (!page.slug) {
      items.push(`<li class="toc-part level-${level}">${esc(page.title)}</li>`);
    } else {
      const cls = page.slug === currentSlug ? ' current' : '';
      items.push(`<li class="toc-page level-${level}${cls}"><a href="${esc(pageFile(page.slug, indexSlug))}">${esc(page.title)}</a></li>`);
    }
  }
  return `<ul class="toc">${items.join('')}</ul>`;
}

function pageHtml({ project, slug, indexSlug, title, body, prev, next, download }) {
  const nav = [
    prev ? `<a class="prev" href="${esc(pageFile(prev.slug, indexSlug))}">← ${esc(prev.title)}</a>` : '<span></span>',
    next ? `<a class="next" href="${esc(pageFile(next.slug, indexSlug))}">${esc(next.title)} →</a>` : '<span></span>',
  ].join('');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · ${esc(project.title)}</title>
<link rel="stylesheet" href="katex/katex.min.css">
<link rel="stylesheet" href="style.css">
</head>
<body data-page="${esc(slug)}">
<nav class="sidebar">
  <div class="search"><input id="search" type="search" placeholder="Search the course" aria-label="Search the course"><ol id="search-results"></ol></div>
  ${tocHtml(project, slug, indexSlug)}
</nav>
<main>
<article>
${title ? `<h1 class="page-title">${esc(title)}</h1>` : ''}
${download ? `<p class="download"><a href="${esc(download)}" download>Download this notebook</a></p>` : ''}
${body}
</article>
<nav class="prev-next">${nav}</nav>
</main>
<script src="search-index.js"></script>
<script src="search.js"></script>
</body>
</html>
`;
}

async function main() {
  const config = await getJson('/config.json');
  const project = config.projects[0];
  const indexSlug = project.index;
  const pages = [{ slug: indexSlug, title: project.title }, ...project.pages.filter((p) => p.slug)];
  const ctx0 = { indexSlug, slugs: new Set(pages.map((p) => p.slug)) };
  fs.mkdirSync(out, { recursive: true });
  const index = [];
  for (const [i, page] of pages.entries()) {
    const data = await getJson(`/content/${page.slug}.json`);
    const ctx = { ...ctx0, headings: [] };
    const body = render(data.mdast, ctx);
    const title = data.frontmatter?.title ?? page.title;
    const nbExport = (data.frontmatter?.exports ?? []).find((e) => e.format === 'ipynb' && e.url);
    const html = pageHtml({
      project, slug: page.slug, indexSlug, title, body,
      prev: pages[i - 1], next: pages[i + 1],
      download: nbExport ? assetUrl(nbExport.url) : undefined,
    });
    fs.writeFileSync(path.join(out, pageFile(page.slug, indexSlug)), html);
    index.push({ file: pageFile(page.slug, indexSlug), title: page.slug === indexSlug ? project.title : title, text: plainText(data.mdast).replace(/\s+/g, ' ').trim() });
  }
  for (const asset of assets) {
    const resp = await fetch(`${cdn}/${asset}`);
    if (!resp.ok) throw new Error(`asset /${asset}: HTTP ${resp.status}`);
    const dest = path.join(out, 'build', asset);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, Buffer.from(await resp.arrayBuffer()));
  }
  fs.writeFileSync(path.join(out, 'search-index.js'), `window.SEARCH_INDEX = ${JSON.stringify(index)};\n`);
  fs.copyFileSync(path.join(here, 'search.js'), path.join(out, 'search.js'));
  fs.copyFileSync(path.join(here, 'style.css'), path.join(out, 'style.css'));
  // KaTeX's stylesheet and fonts: Debian's libjs-katex (make site installs it), or KATEX_DIR.
  const katex = process.env.KATEX_DIR || '/usr/share/javascript/katex';
  if (!fs.existsSync(path.join(katex, 'katex.min.css'))) {
    throw new Error(`KaTeX's katex.min.css is not in ${katex}: install Debian's libjs-katex (make site does) or set KATEX_DIR`);
  }
  fs.mkdirSync(path.join(out, 'katex'), { recursive: true });
  fs.copyFileSync(path.join(katex, 'katex.min.css'), path.join(out, 'katex', 'katex.min.css'));
  fs.cpSync(path.join(katex, 'fonts'), path.join(out, 'katex', 'fonts'), { recursive: true, dereference: true });
  console.log(`cvcourse theme: ${pages.length} pages and ${assets.size} assets written to ${out}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
