// Whether verified claims unlock an article: the same rule tollgate applies when it grants.

/** The entitlement an article needs when the site names none, as in tollgate. */
const DEFAULT_REQUIRES = "articles";

/**
 * An entitlements token unlocks every article whose entitlement it lists. An article token
 * unlocks its own article (`art`, exactly) and only under the entitlement it was granted for,
 * which the token does not name, so this asks for evidence:
 *
 * - tollgate grants a reader who holds `requires` as entitled, and then `ent` lists it;
 * - otherwise it grants through the free-article meter, which by default unlocks only
 *   `articles`; so an article token counts for `articles` without `ent` listing it.
 *
 * A deployment that meters other entitlements (`meterable_entitlements`) gets no offline unlock
 * for those from a metered article token: the site asks tollgate instead, or refuses offline.
 */
export function canRead(claims, { articleId, requires = DEFAULT_REQUIRES }) {
  if (!claims || !Array.isArray(claims.ent)) return false;
  if (claims.scope === "entitlements") return claims.ent.includes(requires);
  if (claims.scope === "article") {
    return (
      claims.art === articleId && (requires === DEFAULT_REQUIRES || claims.ent.includes(requires))
    );
  }
  return false;
}
