//! `#[sql_bounds]`: the trait bounds that sqlx needs to run one piece of SQL code on every
//! backend, written once.
//!
//! tollgate's store is generic over its database (`DB: Dialect`: SQLite or PostgreSQL), and
//! sqlx's generic API asks every generic item to prove, in its `where` clause, that the
//! backend's connections execute queries and that the column types it binds and reads are
//! encodable and decodable there. Rust has no bound aliases, and bounds on types other than
//! `DB` itself (`String: Encode<'q, DB>`) are not implied by a supertrait, so without this
//! attribute each `impl` block repeats them all. The attribute appends them to the `where`
//! clause of the `impl` or `fn` it marks; the item itself stays ordinary Rust, which rustfmt
//! formats and the compiler checks as usual.
//!
//! The bounds name the primitive column types (text, integers, booleans, bytes and their
//! `Option`s) rather than row structs: a `#[derive(FromRow)]` row of those types is provably
//! decodable from them, so a new row type needs no new bound.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;
use syn::{Item, WhereClause, parse_quote};

/// Appends to the marked `impl` block's or function's `where` clause the bounds under which
/// generic code over the type parameter `DB` (which must be declared, bounded by `Dialect`)
/// can run sqlx queries on `DB`'s connections, bind and read its column types.
#[proc_macro_attribute]
pub fn sql_bounds(attribute: TokenStream, item: TokenStream) -> TokenStream {
    expand(attribute.into(), item.into())
        .unwrap_or_else(|err| err.to_compile_error())
        .into()
}

fn expand(attribute: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    if !attribute.is_empty() {
        return Err(syn::Error::new_spanned(
            attribute,
            "#[sql_bounds] takes no arguments",
        ));
    }
    let mut item: Item = syn::parse2(item)?;
    let generics = match &mut item {
        Item::Impl(block) => &mut block.generics,
        Item::Fn(function) => &mut function.sig.generics,
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "#[sql_bounds] marks an `impl` block or a function",
            ));
        }
    };
    if !generics.type_params().any(|param| param.ident == "DB") {
        return Err(syn::Error::new_spanned(
            &*generics,
            "#[sql_bounds] needs a type parameter named `DB`",
        ));
    }
    let bounds = bounds();
    generics
        .make_where_clause()
        .predicates
        .extend(bounds.predicates);
    Ok(quote!(#item))
}

/// The bounds, for a type parameter `DB: Dialect`.
fn bounds() -> WhereClause {
    parse_quote! {
        where
            for<'c> &'c mut <DB as ::sqlx::Database>::Connection:
                ::sqlx::Executor<'c, Database = DB>,
            for<'q> <DB as ::sqlx::Database>::Arguments<'q>: ::sqlx::IntoArguments<'q, DB>,
            for<'q> String: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> Option<String>: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> i64: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> Option<i64>: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> bool: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'q> Vec<u8>: ::sqlx::Encode<'q, DB> + ::sqlx::Type<DB>,
            for<'r> String: ::sqlx::Decode<'r, DB>,
            for<'r> i64: ::sqlx::Decode<'r, DB>,
            for<'r> bool: ::sqlx::Decode<'r, DB>,
            for<'r> Vec<u8>: ::sqlx::Decode<'r, DB>,
            for<'r> &'r str: ::sqlx::ColumnIndex<<DB as ::sqlx::Database>::Row>,
            usize: ::sqlx::ColumnIndex<<DB as ::sqlx::Database>::Row>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(attribute: TokenStream2, item: TokenStream2) -> String {
        match expand(attribute, item) {
            Ok(tokens) => tokens.to_string(),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn the_bounds_join_an_impl_blocks_own_where_clause() {
        let out = expanded(
            quote!(),
            quote!(
                impl<DB: Dialect> Thing for Store<DB> where DB: Send {}
            ),
        );
        assert!(out.contains("DB : Send"), "{out}");
        assert!(out.contains(":: sqlx :: Executor"), "{out}");
        assert!(out.contains("usize : :: sqlx :: ColumnIndex"), "{out}");
    }

    #[test]
    fn a_function_gets_them_too() {
        let out = expanded(
            quote!(),
            quote!(
                async fn f<DB: Dialect>(x: u8) {}
            ),
        );
        assert!(out.contains("where"), "{out}");
        assert!(out.contains("Decode"), "{out}");
    }

    #[test]
    fn an_item_without_db_or_with_arguments_is_refused() {
        assert!(
            expanded(
                quote!(),
                quote!(
                    fn f<T>() {}
                )
            )
            .contains("type parameter named `DB`"),
        );
        assert!(
            expanded(
                quote!(x),
                quote!(
                    fn f<DB>() {}
                )
            )
            .contains("takes no arguments")
        );
        assert!(
            expanded(
                quote!(),
                quote!(
                    struct S;
                )
            )
            .contains("marks an `impl` block")
        );
    }
}
