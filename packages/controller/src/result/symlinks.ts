/**
 * Where a symlink of a tree really leads, following every other symlink of that tree on
 * the way, as a checkout would: `a/b/c/up -> ../../..` is harmless alone, but makes
 * `etc -> a/b/c/up/../../../../etc` leave the repository, although each link's own text
 * looks fine.
 */

/** More links than this in one resolution is a loop (Linux gives up at 40 as well). */
const MAX_HOPS = 40;

const parts = (path: string) => path.split('/').filter((p) => p !== '' && p !== '.');

/**
 * Whether resolving the symlink at `linkPath` (its target in `links`, as every symlink of the
 * tree by path) leaves the repository, enters `.git`, or loops. Directories in tree paths are
 * real: git cannot store a path below a symlink.
 */
export function linkEscapes(links: ReadonlyMap<string, string>, linkPath: string): boolean {
  const first = links.get(linkPath);
  if (first === undefined) return false;
  let hops = 0;
  let dir = parts(linkPath).slice(0, -1);
  let rest = parts(first.replaceAll('\\', '/'));
  if (isAbsolute(first)) return true;
  while (rest.length > 0) {
    const part = rest.shift()!;
    if (part === '..') {
      if (dir.length === 0) return true;
      dir = dir.slice(0, -1);
      continue;
    }
    if (part.toLowerCase() === '.git' || part.includes('\0')) return true;
    const here = [...dir, part];
    const target = links.get(here.join('/'));
    if (target === undefined) {
      dir = here;
      continue;
    }
    if (++hops > MAX_HOPS || isAbsolute(target)) return true;
    // A link in the way: its target is walked from the link's own folder, then what was left.
    rest = [...parts(target.replaceAll('\\', '/')), ...rest];
  }
  return false;
}

function isAbsolute(target: string): boolean {
  return target.startsWith('/') || target.startsWith('\\') || /^[A-Za-z]:[\\/]/.test(target);
}
